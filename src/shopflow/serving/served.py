"""A model as the service holds it: the predictor plus the facts /metadata reports.

A :class:`ServedModel` is immutable. The hot swap replaces the service's reference to one
with a reference to another in a single assignment, so a request that has picked up a
model keeps scoring with it even while the next one takes over.

When registration stored a compiled predictor beside the model
(:mod:`shopflow.training.compiled`), batches up to its ``max_rows`` are scored with it
(``inference: compiled-numpy`` in ``/metadata``), larger ones and everything else with the
library predictor. It serves only after :meth:`ServedModel.check_compiled` found it within
:data:`~shopflow.training.compiled.TOLERANCE` of the library at swap time.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.serving.alias_follower import ModelRefused

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.serving.packaged import PinnedModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

# metadata keys (registry metadata, then ledger metrics) that may hold the training base rate
_BASE_RATE_KEYS = ("base_rate", "train_base_rate", "positive_rate", "label_rate", "train_label_rate")
KNOWN_COLUMN = "known"


@dataclass(frozen=True)
class ServedModel:
    """A loaded production (or shadow) model.

    Attributes:
        version: the model version (BentoML tag version, ledger version).
        model: the :class:`~shopflow.training.model.PropensityModel`.
        family: model family.
        feature_service: Feast feature service that produces the model's features.
        feature_names: columns the model reads.
        metrics: evaluation metrics (ledger, else registry metadata).
        trained_at: when training finished, ISO 8601.
        cold_start_probability: the score for a shopper without features (base rate).
        cold_start_source: where that number came from, for /metadata.
        loaded_at: when this process loaded it.
        fast_path: the matrix path gave the frame path's scores on golden rows.
        compiled: the compiled predictor that scores small batches (None: the library's).
        inference_reason: why the library serves, or how the compiled one was checked.
    """

    version: str
    model: Any
    family: str
    feature_service: str
    feature_names: tuple[str, ...]
    metrics: dict[str, Any]
    trained_at: str | None
    cold_start_probability: float
    cold_start_source: str
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    fast_path: bool = False
    compiled: Any = None
    inference_reason: str = ""

    @property
    def inference(self) -> str:
        """``compiled-numpy`` when a checked compiled predictor scores small batches."""
        from shopflow.training.compiled import COMPILED, LIBRARY

        return COMPILED if self.compiled is not None else LIBRARY

    def _probabilities(self, rows: np.ndarray) -> np.ndarray:
        """P(buy) of a feature matrix: compiled for small batches, else the library.

        Hostile values on the way in and out: an infinite feature value (a ratio over a
        zero count, a corrupt online record) is read as missing, as NaN is, which every
        family imputes; a score the model cannot give as a finite number (NaN or an
        infinity) is never served: that shopper gets the cold-start probability, the
        honest answer for someone the model cannot score, and a warning names the model.
        Finite scores are clipped into [0, 1].
        """
        rows = missing_if_infinite(rows)
        compiled = self.compiled
        if compiled is not None and compiled.serves(len(rows)):
            raw = compiled.predict(rows)
        else:
            raw = self.model.predictor.predict(rows)
        values = np.asarray(raw, dtype=np.float64).reshape(-1)
        scores = np.clip(values, 0.0, 1.0)
        bad = ~np.isfinite(values)  # before the clip, which would make an infinity 0 or 1
        if bad.any():
            logger.warning("model %s gave %d non-finite score(s) of %d; those shoppers get "
                           "the cold-start probability", self.version, int(bad.sum()), len(bad))
            scores[bad] = self.cold_start_probability
        return scores

    def score(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """P(buy) per row of an online-feature frame, cold start where the user is unknown.

        Args:
            features: one row per requested user, in order, with a boolean ``known``
                column (False: no features online for that user).

        Returns:
            ``(probabilities, known)`` — two arrays in the frame's row order.
        """
        n = len(features)
        if KNOWN_COLUMN in features.columns:
            known = features[KNOWN_COLUMN].to_numpy(dtype=bool, na_value=False)
        else:
            known = np.ones(n, dtype=bool)
        probabilities = np.full(n, self.cold_start_probability, dtype=np.float64)
        if known.any():
            rows = features if known.all() else features.loc[known]
            # the model's own column alignment, then the guarded scoring of the matrix path
            # (the library predictor gives exactly PropensityModel.predict_proba's scores)
            probabilities[known] = self._probabilities(self.model.matrix(rows))
        return probabilities, known

    def score_matrix(self, matrix: np.ndarray, known: np.ndarray) -> np.ndarray:
        """Like :meth:`score`, on a matrix already in ``feature_names`` order.

        Exactly :meth:`score` without its pandas alignment (the runtime verifies equality
        on golden rows before using it for a model).
        """
        probabilities = np.full(len(known), self.cold_start_probability, dtype=np.float64)
        if known.any():
            probabilities[known] = self._probabilities(matrix if known.all() else matrix[known])
        return probabilities

    def check_compiled(self, rows: np.ndarray) -> ServedModel:
        """This model with its compiled predictor if it still agrees with the library.

        Compares both on ``rows`` (golden rows in ``feature_names`` order) plus probe rows
        with missing, zero and extreme values; more than
        :data:`~shopflow.training.compiled.TOLERANCE` apart anywhere (or an error) and the
        compiled predictor is dropped: the library serves, and ``/metadata`` says why.
        """
        from shopflow.training.compiled import TOLERANCE, max_difference, probe_rows

        if self.compiled is None:
            return self
        checked = probe_rows(rows, len(self.feature_names))
        try:
            difference = max_difference(self.compiled, self.model.predictor, checked)
        except Exception as exc:  # a broken artefact must never take the model down
            difference, failure = float("inf"), f"{type(exc).__name__}: {exc}"
        else:
            failure = f"max |compiled - library| = {difference:.3g} > {TOLERANCE:g}"
        if difference <= TOLERANCE:
            return dataclasses.replace(self, inference_reason=(
                f"compiled predictor ({getattr(self.compiled, 'method', '?')}) agrees with the "
                f"library within {TOLERANCE:g} on {len(checked)} rows at swap (max "
                f"{difference:.3g}); it scores batches up to "
                f"{getattr(self.compiled, 'max_rows', None) or 'any number of'} rows"))
        reason = f"compiled predictor refused at swap: {failure} on {len(checked)} rows"
        logger.warning("model %s: %s; the library predictor serves", self.version, reason)
        return dataclasses.replace(self, compiled=None, inference_reason=reason)

    def describe(self) -> dict[str, Any]:
        """The JSON facts of ``GET /metadata``."""
        return {
            "version": self.version,
            "family": self.family,
            "feature_service": self.feature_service,
            "feature_names": list(self.feature_names),
            "metrics": self.metrics,
            "trained_at": self.trained_at,
            "cold_start_probability": self.cold_start_probability,
            "cold_start_source": self.cold_start_source,
            "loaded_at": self.loaded_at,
            "fast_path": self.fast_path,
            "inference": self.inference,
            "inference_reason": self.inference_reason,
        }


def missing_if_infinite(rows: np.ndarray) -> np.ndarray:
    """``rows`` with every infinite value read as missing (NaN); a copy only if there is one.

    An infinity in the online store is a broken value, not a very large one; scikit-learn
    pipelines refuse it outright (the whole request would fail), boosted trees put it on
    an arbitrary side of every split. Missing is what every family knows how to score.
    """
    infinite = np.isinf(rows)
    return np.where(infinite, np.nan, rows) if infinite.any() else rows


def _finite_probability(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def cold_start_probability(
    model: Any, metadata: dict[str, Any], metrics: dict[str, Any]
) -> tuple[float, str]:
    """The score for an unknown shopper, and where it came from.

    The training base rate is the honest answer for someone we know nothing about; it is
    read from the registry metadata or the ledger metrics. Models saved without it get the
    model's own score for a shopper with every feature missing (each family imputes).
    """
    for source_name, source in (("metadata", metadata), ("metrics", metrics)):
        for key in _BASE_RATE_KEYS:
            value = _finite_probability(source.get(key))
            if value is not None:
                return value, f"{source_name}.{key}"
    import pandas as pd

    empty = pd.DataFrame([{name: np.nan for name in model.feature_names}])
    value = _finite_probability(model.predict_proba(empty)[0])
    if value is None:
        raise ModelRefused("model has no base rate and gives no finite score for an empty row")
    return value, "model(all features missing)"


def load_served_model(settings: Settings, version: str) -> ServedModel:
    """Load ``version`` from the model store and gather its facts.

    Raises:
        ModelRefused: the version is not in the store or cannot be unpickled.
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import ModelLoadError, load_model, model_info

    try:
        info = model_info(settings, version)
        model = load_model(settings, version)
    except ModelLoadError as exc:
        raise ModelRefused(str(exc)) from exc
    except Exception as exc:  # a broken store entry must never take the service down
        raise ModelRefused(f"model {version} could not be loaded: {type(exc).__name__}: {exc}") from exc
    metadata = dict(info.metadata)
    compiled, inference_reason = _compiled_predictor(settings, version, metadata)
    ledger = Ledger(settings.ledger_url)
    try:
        record = ledger.candidate(version)
    finally:
        ledger.close()
    return _served(version, model, metadata, record.metrics if record is not None else {},
                   compiled, inference_reason)


def load_packaged_model(pin: PinnedModel) -> ServedModel:
    """Load the model a Bento carries, from its folder, with the facts its pin carries.

    The same model, compiled predictor, metrics and cold-start probability as
    :func:`load_served_model` gives for that version, without the ledger or the model
    store of ``SHOPFLOW_HOME`` (the digests and ledger metrics travel in the pin).

    Raises:
        ModelRefused: a file differs from its recorded digest, or cannot be unpickled.
    """
    from shopflow.registry import COMPILED_FILE, MODEL_FILE, ModelLoadError
    from shopflow.registry.digest import ArtefactMismatch, verify_packaged
    from shopflow.registry.store import read_compiled_file, read_model_file

    folder, version = pin.folder(), pin.version
    try:
        verify_packaged(version, folder, pin.artefacts, files=(MODEL_FILE,))
        model = read_model_file(folder / MODEL_FILE, version)
    except (ArtefactMismatch, ModelLoadError) as exc:
        raise ModelRefused(str(exc)) from exc
    metadata = dict(pin.metadata)
    compiled: Any = None
    facts = metadata.get("compiled")
    inference_reason = str(facts["reason"]) if isinstance(facts, dict) and facts.get("reason") \
        else "no compiled predictor stored (registered without one)"
    if (folder / COMPILED_FILE).is_file():
        try:
            verify_packaged(version, folder, pin.artefacts, files=(COMPILED_FILE,))
            compiled, inference_reason = read_compiled_file(folder / COMPILED_FILE, version), \
                "not checked yet"
        except (ArtefactMismatch, ModelLoadError) as exc:
            logger.warning("%s; the library predictor serves", exc)
            inference_reason = str(exc)
    return _served(version, model, metadata, pin.metrics, compiled, inference_reason)


def _served(version: str, model: Any, metadata: dict[str, Any], ledger_metrics: dict[str, Any],
            compiled: Any, inference_reason: str) -> ServedModel:
    """The :class:`ServedModel` of a loaded model: registry metrics overlaid by the
    ledger's, and the cold-start probability they give."""
    metrics: dict[str, Any] = dict(metadata.get("metrics") or {})
    if ledger_metrics:
        metrics = {**metrics, **ledger_metrics}
    base_rate, source = cold_start_probability(model, metadata, metrics)
    trained_at = getattr(model, "trained_at", None)
    return ServedModel(
        version=version,
        model=model,
        family=str(getattr(model, "family", metadata.get("family", "unknown"))),
        feature_service=str(model.feature_service),
        feature_names=tuple(model.feature_names),
        metrics=metrics,
        trained_at=trained_at.isoformat() if trained_at is not None else metadata.get("trained_at"),
        cold_start_probability=base_rate,
        cold_start_source=source,
        compiled=compiled,
        inference_reason=inference_reason,
    )


def _compiled_predictor(settings: Settings, version: str, metadata: dict[str, Any]
                        ) -> tuple[Any, str]:
    """The compiled predictor stored beside ``version`` (or None), and why when None.

    An unreadable one is no reason to refuse the model: the library predictor serves.
    """
    from shopflow.registry import ModelLoadError, load_compiled

    try:
        compiled = load_compiled(settings, version)
    except ModelLoadError as exc:
        logger.warning("%s; the library predictor serves", exc)
        return None, str(exc)
    if compiled is not None:
        return compiled, "not checked yet"
    facts = metadata.get("compiled")
    if isinstance(facts, dict) and facts.get("reason"):
        return None, str(facts["reason"])
    return None, "no compiled predictor stored (registered without one)"
