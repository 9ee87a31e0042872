"""The PyTorch MLP and the logistic baseline as plain numpy forward passes.

Both families are a few small matrix products. Torch spends tens of microseconds per call
on dispatch and autograd bookkeeping, and sklearn's pipeline as much on input validation
in every step, before any arithmetic; the same products in numpy cost a few microseconds.

* MLP: the family's own :class:`~shopflow.training.families.mlp.Preprocessor` (already
  numpy), the recency embedding, then ``Linear -> ReLU`` layers (dropout is the identity
  at inference) and the output layer in float32 like torch, then a float32 sigmoid. The
  sums run in another order than torch's kernels, so values may differ in the last float32
  bits (~1e-7); the registration check measures it.
* Logistic baseline: median imputation, the optional signed log, standardisation and the
  dot product, in float64 in sklearn's order of operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.training.compiled.trees import NotCompilable

if TYPE_CHECKING:
    from shopflow.training.families.mlp import Preprocessor, TorchPredictor


@dataclass(frozen=True)
class NumpyMLP:
    """The MLP's weights as float32 arrays (transposed for ``rows @ weight``)."""

    preprocessor: Preprocessor
    embedding: np.ndarray | None
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def from_torch(cls, predictor: TorchPredictor) -> NumpyMLP:
        """Read the layers from the predictor's state dict (``mlp.<i>.weight``, in order).

        Raises:
            NotCompilable: the state dict does not hold the architecture ``build_module``
                makes (one linear layer per hidden width, then the output layer).
        """
        state = predictor.state
        linear = sorted(int(key.split(".")[1]) for key in state
                         if key.startswith("mlp.") and key.endswith(".weight"))
        if len(linear) != len(predictor.arch["hidden"]) + 1:
            raise NotCompilable(f"MLP state has {len(linear)} linear layers for hidden "
                                f"widths {predictor.arch['hidden']}")
        embedding = state.get("embedding.weight")
        return cls(
            preprocessor=predictor.preprocessor,
            embedding=None if embedding is None else np.asarray(embedding, dtype=np.float32),
            weights=tuple(np.ascontiguousarray(np.asarray(state[f"mlp.{i}.weight"],
                                                          dtype=np.float32).T)
                          for i in linear),
            biases=tuple(np.asarray(state[f"mlp.{i}.bias"], dtype=np.float32) for i in linear),
        )

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        numeric, buckets = self.preprocessor.transform(matrix)
        hidden = numeric if self.embedding is None else np.concatenate(
            [numeric, self.embedding[buckets]], axis=1)
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ weight + bias
            if i < last:
                np.maximum(hidden, 0.0, out=hidden)
        one = np.float32(1.0)
        logits = hidden[:, 0]
        with np.errstate(over="ignore"):  # a huge negative logit decays to inf: P = 0
            decay = np.exp(-logits.astype(np.float64)).astype(np.float32)
        return np.asarray(one / (one + decay), dtype=np.float64)


@dataclass(frozen=True)
class NumpyLogistic:
    """Imputation, optional signed log, standardisation and logistic regression."""

    columns: np.ndarray
    medians: np.ndarray
    signed_log: bool
    mean: np.ndarray | None
    scale: np.ndarray | None
    coef: np.ndarray
    intercept: float

    @classmethod
    def from_pipeline(cls, pipeline: Any, columns: list[int]) -> NumpyLogistic:
        """Read the fitted steps of the baseline's sklearn pipeline.

        Raises:
            NotCompilable: a step other than ``SimpleImputer(median)``,
                ``FunctionTransformer(_signed_log1p)``, ``StandardScaler`` and a binary
                ``LogisticRegression`` (last), in that order.
        """
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import FunctionTransformer, StandardScaler

        from shopflow.training.families.baseline import _signed_log1p

        steps = [step for _, step in pipeline.steps]
        medians, signed_log, mean, scale = None, False, None, None
        *transforms, last = steps
        if not isinstance(last, LogisticRegression) or len(last.classes_) != 2:
            raise NotCompilable("the pipeline does not end in a binary LogisticRegression")
        for step in transforms:
            if isinstance(step, SimpleImputer) and medians is None and not signed_log \
                    and mean is None and step.strategy == "median":
                medians = np.asarray(step.statistics_, dtype=np.float64)
                if np.isnan(medians).any():  # sklearn would drop those columns
                    raise NotCompilable("the imputer has all-missing columns it drops")
            elif isinstance(step, FunctionTransformer) and step.func is _signed_log1p \
                    and not signed_log and mean is None:
                signed_log = True
            elif isinstance(step, StandardScaler) and mean is None:
                mean = np.asarray(step.mean_ if step.with_mean else 0.0, dtype=np.float64)
                scale = None if not step.with_std else np.asarray(step.scale_, dtype=np.float64)
            else:
                raise NotCompilable(f"pipeline step {type(step).__name__} is not reproduced")
        if medians is None:
            raise NotCompilable("the pipeline has no median imputer (NaN would reach the model)")
        return cls(columns=np.asarray(columns, dtype=np.int64), medians=medians,
                   signed_log=signed_log, mean=mean, scale=scale,
                   coef=np.asarray(last.coef_, dtype=np.float64).T.copy(),
                   intercept=float(np.asarray(last.intercept_).reshape(-1)[0]))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        from scipy.special import expit

        x = np.asarray(matrix, dtype=np.float64)[:, self.columns]
        x = np.where(np.isnan(x), self.medians, x)
        if self.signed_log:
            x = np.sign(x) * np.log1p(np.abs(x))
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale
        return np.asarray(expit((x @ self.coef + self.intercept).reshape(-1)), dtype=np.float64)
