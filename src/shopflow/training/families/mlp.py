"""PyTorch MLP: normalized numeric features + an embedding of bucketised recency.

Recency acts on purchase propensity in steps (bought yesterday vs last month vs never), so
it also enters as a learned embedding of its quantile bucket. Training is deterministic
(fixed seeds, deterministic algorithms, a fixed thread count) and early-stops on the
validation AUC. The fitted model is kept as a CPU state dict plus its architecture, so it
loads anywhere with no GPU.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.training.families.base import FitContext, FitData, Fitted

if TYPE_CHECKING:
    from collections.abc import Iterator

logger = logging.getLogger(__name__)

BUCKET_FEATURE = "recency_days"
N_BUCKETS = 8
EMBEDDING_DIM = 4
MAX_EPOCHS = 40
PATIENCE = 5
#: Rows :meth:`Preprocessor.transform` works on at once (bounds its float64 copies).
TRANSFORM_ROWS = 65_536


class Preprocessor:
    """Median imputation, signed log, standardisation and recency buckets (fit on train)."""

    def __init__(self, matrix: np.ndarray, feature_names: list[str],
                 weights: np.ndarray | None = None) -> None:
        with np.errstate(all="ignore"):
            medians = np.nanmedian(matrix, axis=0) if len(matrix) else np.zeros(matrix.shape[1])
        self.medians = np.where(np.isfinite(medians), medians, 0.0)
        transformed = self._log(self._impute(matrix))
        # weighted moments of a down-sampled set estimate the full set's; the medians and
        # bucket edges below stay unweighted: they only place fill values and bucket
        # boundaries, which the network learns around, not probabilities
        if weights is not None and len(matrix):
            self.means = np.average(transformed, axis=0, weights=weights)
            stds = np.sqrt(np.average((transformed - self.means) ** 2, axis=0, weights=weights))
        else:
            self.means = transformed.mean(axis=0)
            stds = transformed.std(axis=0)
        self.stds = np.where(stds > 1e-9, stds, 1.0)
        self.bucket_column = (
            feature_names.index(BUCKET_FEATURE) if BUCKET_FEATURE in feature_names else None
        )
        if self.bucket_column is not None:
            quantiles = np.linspace(0, 1, N_BUCKETS + 1)[1:-1]
            values = self._impute(matrix)[:, self.bucket_column]
            self.edges = np.unique(np.quantile(values, quantiles)) if len(values) else np.zeros(0)
        else:
            self.edges = np.zeros(0)

    @property
    def n_buckets(self) -> int:
        return len(self.edges) + 1 if self.bucket_column is not None else 0

    def _impute(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(np.where(np.isnan(matrix), self.medians, matrix), dtype=np.float64)

    @staticmethod
    def _log(matrix: np.ndarray) -> np.ndarray:
        return np.asarray(np.sign(matrix) * np.log1p(np.abs(matrix)), dtype=np.float64)

    def transform(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(normalized numeric float32 matrix, bucket index int64 vector).

        Worked in blocks of :data:`TRANSFORM_ROWS` rows: imputation, the signed log and
        the standardisation each make a float64 copy (about five at once), which for the
        held-out rows of a 10M-event shop came to gigabytes; every step is per element,
        so the values are those of one piece.
        """
        numeric = np.empty(matrix.shape, dtype=np.float32)
        buckets = np.zeros(len(matrix), dtype=np.int64)
        for start in range(0, len(matrix), TRANSFORM_ROWS):
            block = slice(start, start + TRANSFORM_ROWS)
            imputed = self._impute(matrix[block])
            numeric[block] = (self._log(imputed) - self.means) / self.stds
            if self.bucket_column is not None:
                buckets[block] = np.digitize(imputed[:, self.bucket_column], self.edges)
        return numeric, buckets


def build_module(arch: dict[str, Any]) -> Any:
    """The network for an architecture dict (torch imported here, not at module import)."""
    import torch
    from torch import nn

    class PropensityMLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            n_buckets = int(arch["n_buckets"])
            self.embedding = nn.Embedding(n_buckets, EMBEDDING_DIM) if n_buckets else None
            width = int(arch["n_numeric"]) + (EMBEDDING_DIM if n_buckets else 0)
            layers: list[nn.Module] = []
            for hidden in arch["hidden"]:
                layers += [nn.Linear(width, int(hidden)), nn.ReLU(), nn.Dropout(arch["dropout"])]
                width = int(hidden)
            layers.append(nn.Linear(width, 1))
            self.mlp = nn.Sequential(*layers)

        def forward(self, numeric: torch.Tensor, buckets: torch.Tensor) -> torch.Tensor:
            if self.embedding is not None:
                numeric = torch.cat([numeric, self.embedding(buckets)], dim=1)
            logits: torch.Tensor = self.mlp(numeric).squeeze(1)
            return logits

    return PropensityMLP()


class TorchPredictor:
    """Architecture + CPU state dict (numpy arrays); the module is rebuilt on first use."""

    def __init__(self, arch: dict[str, Any], state: dict[str, np.ndarray],
                 preprocessor: Preprocessor) -> None:
        self.arch = arch
        self.state = state
        self.preprocessor = preprocessor
        self._module: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"arch": self.arch, "state": self.state, "preprocessor": self.preprocessor}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._module = None

    def module(self) -> Any:
        if self._module is None:
            import torch

            module = build_module(self.arch)
            module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.state.items()})
            module.eval()
            self._module = module
        return self._module

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        import torch

        numeric, buckets = self.preprocessor.transform(matrix)
        with torch.no_grad():
            logits = self.module()(torch.from_numpy(numeric), torch.from_numpy(buckets))
        return torch.sigmoid(logits).numpy().astype(np.float64)


def default_params(data: FitData, ctx: FitContext) -> dict[str, Any]:
    return {"hidden": [64, 32], "dropout": 0.1, "lr": 2e-3, "weight_decay": 1e-5,
            "batch_size": 512}


def sample_params(rng: np.random.Generator, data: FitData, ctx: FitContext) -> dict[str, Any]:
    hidden = [[32], [64, 32], [128, 64], [64, 64, 32]][int(rng.integers(0, 4))]
    return {
        "hidden": hidden,
        "dropout": float(rng.choice([0.0, 0.1, 0.2, 0.3])),
        "lr": float(10 ** rng.uniform(-3.3, -2.2)),
        "weight_decay": float(10 ** rng.uniform(-6, -3)),
        "batch_size": int(rng.choice([256, 512, 1024])),
    }


@contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """Fixed threads and deterministic kernels for the fit only (restored afterwards)."""
    import torch

    old_threads = torch.get_num_threads()
    old_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_deterministic)


def fit(data: FitData, params: dict[str, Any], ctx: FitContext) -> Fitted:
    import torch
    from sklearn.metrics import roc_auc_score

    preprocessor = Preprocessor(data.x_train, data.feature_names, data.w_train)
    arch = {
        "n_numeric": data.x_train.shape[1],
        "n_buckets": preprocessor.n_buckets,
        "hidden": list(params["hidden"]),
        "dropout": float(params["dropout"]),
    }
    device = torch.device(ctx.device)
    # One intra-op thread: this network's ops are too small to split, and two threads
    # measured ~5x slower on a 2-core host (same results either way).
    with _deterministic_torch(1):
        torch.manual_seed(ctx.seed)
        generator = torch.Generator().manual_seed(ctx.seed)
        module = build_module(arch).to(device)
        optimizer = torch.optim.Adam(module.parameters(), lr=params["lr"],
                                     weight_decay=params["weight_decay"])
        # no class weight: a pos_weight inflated every probability (see families/base.py);
        # the rows' sample weights (training.max_rows) enter as a weighted batch mean
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        x_num, x_bucket = (torch.from_numpy(a).to(device)
                           for a in preprocessor.transform(data.x_train))
        y = torch.from_numpy(data.y_train.astype(np.float32)).to(device)
        w = (None if data.w_train is None
             else torch.from_numpy(data.w_train.astype(np.float32)).to(device))
        v_num, v_bucket = (torch.from_numpy(a).to(device)
                           for a in preprocessor.transform(data.x_val))
        best_auc, best_state, best_epoch, stale = -np.inf, None, 0, 0
        batch = int(params["batch_size"])
        for epoch in range(MAX_EPOCHS):
            module.train()
            order = torch.randperm(len(y), generator=generator).to(device)
            for start in range(0, len(y), batch):
                rows = order[start : start + batch]
                optimizer.zero_grad()
                losses = loss_fn(module(x_num[rows], x_bucket[rows]), y[rows])
                loss = (losses.mean() if w is None
                        else (losses * w[rows]).sum() / w[rows].sum())
                loss.backward()
                optimizer.step()
            module.eval()
            with torch.no_grad():
                scores = module(v_num, v_bucket).float().cpu().numpy()
            auc = float(roc_auc_score(data.y_val, scores))
            if auc > best_auc + 1e-5:
                best_auc, best_epoch, stale = auc, epoch + 1, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                stale += 1
                if stale >= PATIENCE:
                    break
        assert best_state is not None
    state = {k: v.detach().cpu().numpy().copy() for k, v in best_state.items()}
    predictor = TorchPredictor(arch, state, preprocessor)
    return Fitted(predictor=predictor, feature_names=list(data.feature_names),
                  params=dict(params),
                  info={"epochs": best_epoch, "device": str(device),
                        "validation_roc_auc": best_auc})
