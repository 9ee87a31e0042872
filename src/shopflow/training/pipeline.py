"""The training step of the pipeline: candidates -> evaluation -> gate 2 -> ledger.

:func:`run_training` does it all in one call (``shopflow train``); the DAG runs the same
work as separate tasks with JSON-able hand-offs:

1. :func:`train_family` — search, fit and save one family (registry + ledger candidate);
2. :func:`evaluate_candidates` — score every candidate on the same out-of-time test rows,
   pick the winner by the primary metric on *validation* (the test rows only report);
3. :func:`decide` — gate 2: winner vs the ledger's production model, each scored through
   its own feature service on identical test rows;
4. :func:`record_decision` — promotion or rejection in the ledger;
5. :func:`shopflow.evaluation.report.write_report` — the run's HTML report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.evaluation.evaluate import ModelEvaluation, evaluate_model
from shopflow.evaluation.gate import (
    ForcedPromotionError,
    GateDecision,
    PairedScores,
    gate_decision,
    require_force_reason,
)
from shopflow.evaluation.metrics import flat_slice_metric, higher_is_better
from shopflow.faults import crash_point
from shopflow.features.matrix import feature_matrix
from shopflow.privacy import id_hasher
from shopflow.training.families.base import FitContext, FitData
from shopflow.training.model import PropensityModel
from shopflow.training.sampling import downsample_negatives
from shopflow.training.split import (
    KEY_COLUMNS,
    Split,
    TrainingDataError,
    feature_columns,
    frame_fingerprint,
    key_ordered,
    split_by_cutoff,
)

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from shopflow.evaluation.aging import AgeCurve
    from shopflow.ledger import Ledger
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

TrainingFrameFor = Callable[[str], "pd.DataFrame"]
DRY_RUN_PREFIX = "dryrun-"


class TrainingError(RuntimeError):
    """Training cannot go on (no candidates, unknown family, unusable device)."""


# ---- results ---------------------------------------------------------------------------
@dataclass
class CandidateResult:
    """A trained, saved candidate (the model itself is kept only in-process)."""

    version: str
    family: str
    feature_service: str
    validation_metrics: dict[str, float]
    params: dict[str, Any]
    run_id: str
    seconds: float
    data_fingerprint: str
    split: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    model: PropensityModel | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (for Airflow XCom); the model stays in the registry."""
        from shopflow.jsonable import jsonable

        data: dict[str, Any] = jsonable({k: v for k, v in asdict(self).items() if k != "model"})
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CandidateResult:
        return cls(**{k: v for k, v in data.items() if k != "model"})


@dataclass
class EvaluationResult:
    """Every candidate scored on the same test rows, and the winner."""

    run_id: str
    feature_service: str
    evaluations: list[ModelEvaluation]
    winner: str | None
    baseline: str | None
    split: dict[str, Any]
    trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    models: dict[str, PropensityModel] = field(default_factory=dict, repr=False, compare=False)
    #: per family: search budget, chosen params, dropped features (for the report)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the winner's metric per age on its held-out cutoffs (:mod:`shopflow.evaluation.aging`)
    age_curve: dict[str, Any] = field(default_factory=dict)

    def evaluation(self, version: str | None) -> ModelEvaluation | None:
        return next((e for e in self.evaluations if e.version == version), None)

    def to_dict(self) -> dict[str, Any]:
        from shopflow.jsonable import jsonable

        data: dict[str, Any] = jsonable({
            "run_id": self.run_id,
            "feature_service": self.feature_service,
            "evaluations": [e.to_dict() for e in self.evaluations],
            "winner": self.winner,
            "baseline": self.baseline,
            "split": self.split,
            "trials": self.trials,
            "training": self.training,
            "age_curve": self.age_curve,
        })
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationResult:
        return cls(
            run_id=data["run_id"],
            feature_service=data["feature_service"],
            evaluations=[ModelEvaluation.from_dict(e) for e in data["evaluations"]],
            winner=data.get("winner"),
            baseline=data.get("baseline"),
            split=data.get("split", {}),
            trials=data.get("trials", {}),
            training=data.get("training", {}),
            age_curve=data.get("age_curve") or {},
        )


@dataclass
class GateOutcome:
    """Gate 2's decision and the evaluations it compared."""

    decision: GateDecision
    challenger: ModelEvaluation
    champion: ModelEvaluation | None
    baseline: ModelEvaluation | None

    def to_dict(self) -> dict[str, Any]:
        from shopflow.jsonable import jsonable

        data: dict[str, Any] = jsonable({
            "decision": self.decision.to_dict(),
            "challenger": self.challenger.to_dict(),
            "champion": self.champion.to_dict() if self.champion else None,
            "baseline": self.baseline.to_dict() if self.baseline else None,
        })
        return data


@dataclass
class TrainingOutcome:
    """What :func:`run_training` did."""

    run_id: str
    candidates: list[CandidateResult]
    evaluation: EvaluationResult
    gate: GateOutcome | None
    report_path: Path
    promoted_version: str | None
    previous_version: str | None
    dry_run: bool
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def winner(self) -> str | None:
        return self.evaluation.winner

    @property
    def decision(self) -> GateDecision | None:
        return self.gate.decision if self.gate else None

    def summary(self) -> dict[str, Any]:
        """A small JSON-able summary for the CLI and the DAG."""
        from shopflow.jsonable import jsonable

        decision = self.decision
        tested = {e.version: e.metrics for e in self.evaluation.evaluations}
        data: dict[str, Any] = jsonable({
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "candidates": [
                {"version": c.version, "family": c.family,
                 "validation": c.validation_metrics, "test": tested.get(c.version, {})}
                for c in self.candidates
            ],
            "winner": self.winner,
            "decision": None if decision is None else {
                "promote": decision.promote, "forced": decision.forced,
                "reason": decision.reason, "explanation": decision.explanation,
            },
            "promoted_version": self.promoted_version,
            "previous_version": self.previous_version,
            "failed_families": self.failures,
            "report": str(self.report_path),
        })
        return data


# ---- helpers ---------------------------------------------------------------------------
def _threads() -> int:
    """Threads per fit: one (see :class:`~shopflow.training.families.base.FitContext`).

    Two OpenMP threads per fit measured 2-5x slower than one on the shared 2-core hosts
    Shopflow runs on (threads spin at barriers while other work holds the cores), and the
    families already train as parallel tasks.
    """
    return 1


def resolve_device(settings: Settings, family: str) -> str:
    """``cpu`` or ``cuda`` for ``family`` (only the torch family uses a GPU).

    Raises:
        TrainingError: ``training.device`` is ``cuda`` but no CUDA device is visible.
    """
    wanted = settings.training.device
    if family != "torch" or wanted == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if wanted == "cuda" and not available:
        raise TrainingError("training.device is 'cuda' but torch sees no CUDA device")
    return "cuda" if available else "cpu"


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """A canonical row order, so the same data in any order trains the same model (a
    frame already in it, as the stored training set is, is used without a copy)."""
    return key_ordered(frame)


def _split(settings: Settings, frame: pd.DataFrame) -> Split:
    return split_by_cutoff(frame, validation_cutoffs=settings.training.validation_cutoffs,
                           test_cutoffs=settings.training.test_cutoffs,
                           horizon=settings.task.horizon)


def _data_window(split: Split) -> tuple[str, str]:
    first = split.train_cutoffs[0]
    last = split.test_cutoffs[-1]
    return first.isoformat(), last.isoformat()


# ---- step 1: one family ----------------------------------------------------------------
def train_family(
    settings: Settings,
    family: str,
    frame: pd.DataFrame,
    run_id: str,
    *,
    feature_service: str | None = None,
    dry_run: bool = False,
    ledger: Ledger | None = None,
) -> CandidateResult:
    """Search and fit one family on the train cutoffs; save it as a candidate.

    Unless ``dry_run``, the model goes to the registry and a candidate row (validation
    metrics under ``validation_<name>``) to the ledger.

    Raises:
        TrainingDataError: the frame cannot be split out of time (see the message).
        TrainingError: unknown family or unusable device.
    """
    from shopflow.settings import MODEL_FAMILIES, settings_fingerprint
    from shopflow.training.families import family_module
    from shopflow.training.prune import prune_features
    from shopflow.training.search import search, trial_budget

    if family not in MODEL_FAMILIES:
        raise TrainingError(f"unknown model family {family!r}; expected one of {MODEL_FAMILIES}")
    service = feature_service or settings.features.feature_service
    frame = _ordered(frame)
    split = _split(settings, frame)
    # the fingerprint goes to the registry and ledger; a dry run records nothing. Taken
    # before the matrices exist: hashing holds a copy of the frame, which should not
    # stack on top of the fit's matrices and models
    fingerprint = "" if dry_run else frame_fingerprint(frame)
    labels = frame["label"].astype(int).to_numpy()
    # above training.max_rows the train part keeps every positive and weighted negatives;
    # validation rows (early stopping, calibration, selection) are never sampled
    sample = downsample_negatives(labels[split.train], settings.training.max_rows,
                                  seed=settings.training.seed)
    train_rows = split.train[sample.rows]
    all_columns = feature_columns(frame)
    # only the rows a fit reads become a matrix (not the test rows, not dropped negatives)
    fit_rows = np.concatenate([train_rows, split.validation])
    full = feature_matrix(frame, all_columns, rows=fit_rows)
    n_train = len(train_rows)
    protected = getattr(family_module(family), "REQUIRED_FEATURES", ())
    pruning = prune_features(full[:n_train], all_columns, protected=protected)
    if pruning.dropped:
        logger.info("%s: dropped %d feature(s) before training: %s", family,
                    len(pruning.dropped), "; ".join(
                        f"{d['feature']} ({d['reason']}{' of ' + d['to'] if 'to' in d else ''})"
                        for d in pruning.dropped))
    columns = pruning.kept
    # nothing pruned (the usual case): the matrix as it is, not a second copy of it
    matrix = full if columns == all_columns else full[:, [all_columns.index(c) for c in columns]]
    del full
    data = FitData(
        x_train=matrix[:n_train], y_train=labels[train_rows],
        x_val=matrix[n_train:], y_val=labels[split.validation],
        feature_names=columns, w_train=sample.weights,
    )
    del matrix
    ctx = FitContext(seed=settings.training.seed, threads=_threads(),
                     device=resolve_device(settings, family),
                     horizon_days=settings.task.horizon.total_seconds() / 86400)
    started = time.perf_counter()
    logger.info("training %s on %d rows x %d features (%d train cutoffs), device %s",
                family, n_train, len(columns), len(split.train_cutoffs), ctx.device)
    # the budget follows the rows each trial fits (after any down-sampling)
    trials = settings.training.search_trials or trial_budget(n_train)
    result = search(family, data, ctx, trials=trials,
                    seconds=settings.training.search_seconds,
                    primary_metric=settings.gate.primary_metric,
                    threshold=settings.training.threshold)
    seconds = time.perf_counter() - started
    fitted = result.fitted
    budget = {**result.budget, "rule": (
        "training.search_trials" if settings.training.search_trials else
        f"trial_budget({n_train} training rows)")}
    fitted.info = {**fitted.info, "search": budget, "pruning": pruning.describe(),
                   "n_features": len(fitted.feature_names), "sampling": sample.facts}
    model = PropensityModel(family=family, feature_names=list(fitted.feature_names),
                            feature_service=service, params=dict(fitted.params),
                            predictor=fitted.predictor)
    window = _data_window(split)
    logger.info("%s: best validation %s=%.4f after %d trial(s) in %.1fs (%s rows/s)", family,
                settings.gate.primary_metric,
                result.validation_metrics.get(settings.gate.primary_metric, float("nan")),
                len(result.trials), seconds, f"{n_train * len(result.trials) / max(seconds, 1e-9):,.0f}")
    version = f"{DRY_RUN_PREFIX}{family}"
    if not dry_run:
        from shopflow.ledger import Ledger
        from shopflow.registry import code_version, model_digests, save_model
        from shopflow.training.compiled import compile_checked

        config_hash = settings_fingerprint(settings)
        code = code_version()
        # the service's small batches use a numpy copy of the model, kept only if it
        # predicts the model's own test rows (and probe rows) as the library does
        compilation = compile_checked(model, feature_matrix(frame, model.feature_names,
                                                            rows=split.test))
        version = save_model(settings, model, compiled=compilation.predictor, metadata={
            "compiled": compilation.facts,
            "metrics": {f"validation_{k}": v for k, v in result.validation_metrics.items()},
            # the service answers shoppers without features with this (cold start);
            # every training row's label, whatever the fit down-sampled
            "base_rate": float(labels[split.train].mean()),
            "hyperparameters": fitted.params,
            "feature_service": service,
            "data_window": list(window),
            "data_fingerprint": fingerprint,
            "config_hash": config_hash,
            "code_version": code,
            "run_id": run_id,
            "airflow_run_id": run_id,
            "fit_info": fitted.info,
            "search": budget,
            # serving reads model.feature_names (the kept columns); these were dropped
            "dropped_features": pruning.dropped,
        })
        # a crash here leaves a stored model with no ledger row: never served, never
        # reused (a retry trains and saves a new version)
        crash_point(f"inside:train_candidate[{family}]")
        owned = ledger is None
        ledger = ledger or Ledger(settings.ledger_url)
        try:
            ledger.record_candidate(
                version=version, family=family,
                metrics={f"validation_{k}": v for k, v in result.validation_metrics.items()},
                params=fitted.params, feature_service=service, data_window=window,
                data_fingerprint=fingerprint, config_hash=config_hash, code_version=code,
                run_id=run_id, artefacts=model_digests(settings, version),
            )
        finally:
            if owned:
                ledger.close()
    return CandidateResult(
        version=version, family=family, feature_service=service,
        validation_metrics=result.validation_metrics, params=dict(fitted.params),
        run_id=run_id, seconds=round(seconds, 3), data_fingerprint=fingerprint,
        split=split.describe(), trials=result.trials, info=dict(fitted.info), model=model,
    )


# ---- step 2: evaluate and select -------------------------------------------------------
def _model_for(settings: Settings, candidate: CandidateResult) -> PropensityModel:
    if candidate.model is not None:
        return candidate.model
    from shopflow.registry import load_model

    return load_model(settings, candidate.version)


def _primary_score(metrics: dict[str, Any], metric: str) -> float:
    value = metrics.get(metric)
    if value is None or not np.isfinite(value):
        return -np.inf
    return float(value) if higher_is_better(metric) else -float(value)


def evaluate_candidates(
    settings: Settings,
    candidates: Sequence[CandidateResult | dict[str, Any]],
    frame: pd.DataFrame,
    *,
    run_id: str,
    dry_run: bool = False,
    ledger: Ledger | None = None,
) -> EvaluationResult:
    """Score every candidate on the same out-of-time test rows; choose the winner.

    The winner is the best candidate by the primary metric on the *validation* cutoffs,
    so the test rows stay an unbiased estimate for the report and gate 2. Test metrics
    (and per-slice ROC AUC) are merged into each candidate's ledger row.
    """
    results = [c if isinstance(c, CandidateResult) else CandidateResult.from_dict(c)
               for c in candidates]
    if not results:
        raise TrainingError("no candidates to evaluate: every family failed or none was asked for")
    frame = _ordered(frame)
    split = _split(settings, frame)
    test = frame.iloc[split.test].reset_index(drop=True)
    metric = settings.gate.primary_metric
    evaluations: list[ModelEvaluation] = []
    models: dict[str, PropensityModel] = {}
    hash_id = id_hasher(settings)  # the report names example users by pseudonym only
    for candidate in results:
        model = _model_for(settings, candidate)
        models[candidate.version] = model
        evaluations.append(evaluate_model(
            model, test, version=candidate.version, threshold=settings.training.threshold,
            validation_metrics=candidate.validation_metrics,
            explain_rows=settings.training.explain_rows, hash_id=hash_id,
        ))
    winner = max(results, key=lambda c: _primary_score(c.validation_metrics, metric))
    baseline = next((c.version for c in results if c.family == "baseline"), None)
    # the two models gate 2 may promote (the winner, or the baseline it failed to beat
    # clearly) get an age curve, so production always has its own; scoring only
    aging = {version: _age_curve(settings, models[version], frame, split)
             for version in dict.fromkeys([winner.version, baseline]) if version is not None}
    if not dry_run:
        from shopflow.ledger import Ledger

        owned = ledger is None
        ledger = ledger or Ledger(settings.ledger_url)
        try:
            for e in evaluations:
                ledger.update_candidate_metrics(e.version, {
                    **{k: v for k, v in e.metrics.items()},
                    **flat_slice_metric(e.slices, "roc_auc"),
                })
            for version, curve in aging.items():
                if curve is not None:
                    _remember_age_curve(settings, ledger, version, curve)
        finally:
            if owned:
                ledger.close()
    logger.info("winner on validation %s: %s (%s)", metric, winner.family, winner.version)
    return EvaluationResult(
        run_id=run_id, feature_service=results[0].feature_service, evaluations=evaluations,
        winner=winner.version, baseline=baseline, split=split.describe(),
        trials={c.family: c.trials for c in results}, models=models,
        training={c.family: _training_facts(c) for c in results},
        age_curve=(curve.to_dict() if (curve := aging[winner.version]) is not None else {}),
    )


def _age_curve(settings: Settings, model: PropensityModel, frame: pd.DataFrame,
               split: Split) -> AgeCurve | None:
    """A candidate scored on each cutoff after its last training cutoff (scoring only).

    Those rows (purged, validation and test cutoffs: 364k of 394k rows at 3M events) are
    scored in place, by position, and the curve gets only their cutoffs and labels; a
    copy of every column of them was the evaluate stage's largest allocation. None when
    it cannot be measured; the age curve informs, it never stops a run.
    """
    import pandas as pd

    from shopflow.evaluation.aging import age_curve
    from shopflow.transform.publish import current_watermark

    trained_until = split.train_cutoffs[-1]
    rows = np.flatnonzero((pd.to_datetime(frame["event_timestamp"], utc=True) > trained_until)
                          .to_numpy())
    held = frame[["event_timestamp", "label"]].iloc[rows]
    parts = {**{c.isoformat(): "validation" for c in split.validation_cutoffs},
             **{c.isoformat(): "test" for c in split.test_cutoffs}}
    newest = current_watermark(settings)
    try:
        curve = age_curve(
            held, model.predict_proba(frame, rows), trained_until=trained_until,
            metric=settings.gate.primary_metric, tolerance=settings.monitoring.live_tolerance,
            threshold=settings.training.threshold, parts=parts,
            # no published marts (a frame built by hand): the newest labels are a horizon old
            newest_event=(pd.Timestamp(newest) if newest is not None
                          else split.test_cutoffs[-1] + settings.task.horizon),
        )
    except Exception as exc:
        logger.warning("could not measure the age curve of %s: %s", model.family, exc)
        return None
    logger.info("age curve of %s over %d held-out cutoff(s): retrain at %s days of age (%s)",
                model.family, len(curve.points),
                None if curve.retrain_age_seconds is None
                else round(curve.retrain_age_seconds / 86400, 2),
                "measured drop" if curve.dropped else "no drop measured: the last measured age")
    return curve


def _remember_age_curve(settings: Settings, ledger: Ledger, version: str,
                        curve: AgeCurve) -> None:
    """Keep a candidate's curve for monitoring and its retraining age in the ledger."""
    from shopflow.evaluation.aging import save_age_curve

    save_age_curve(settings.home_dir, version, curve)
    numbers = {"retrain_age_days": curve.retrain_age_seconds,
               "max_served_age_days": curve.max_served_age_seconds}
    ledger.update_candidate_metrics(version, {
        name: None if value is None else round(value / 86400, 4)
        for name, value in numbers.items()})


def _training_facts(candidate: CandidateResult) -> dict[str, Any]:
    """What the report says about how a candidate was fitted."""
    info = candidate.info
    return {
        "version": candidate.version,
        "params": candidate.params,
        "search": info.get("search", {}),
        "dropped_features": (info.get("pruning") or {}).get("dropped", []),
        "features_used": info.get("n_features"),
        "sampling": info.get("sampling") or {},
        "fit": {k: info[k] for k in ("rounds", "epochs", "bgnbd", "horizon_days")
                if k in info},
    }


# ---- step 3: gate 2 --------------------------------------------------------------------
def _keys(frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "user_id": frame["user_id"].astype(str).to_numpy(),
        "event_timestamp": pd.to_datetime(frame["event_timestamp"], utc=True).to_numpy(),
    })


def _restrict(frame: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``frame`` whose (user_id, cutoff) is in ``keys``, in ``keys`` order."""
    indexed = _keys(frame).assign(_row=np.arange(len(frame)))
    matched = keys.merge(indexed, on=list(KEY_COLUMNS), how="inner")
    return frame.iloc[matched["_row"].to_numpy()].reset_index(drop=True)


def decide(
    settings: Settings,
    evaluation: EvaluationResult | dict[str, Any],
    *,
    training_frame_for: TrainingFrameFor,
    actor: str = "shopflow",
    force_promote: bool = False,
    force_reason: str | None = None,
    ledger: Ledger | None = None,
) -> GateOutcome:
    """Gate 2: the winner vs the production model on identical out-of-time test rows.

    The champion is loaded from the registry and scored through its *own* feature service
    (``training_frame_for(champion.feature_service)``), restricted to the challenger's test
    rows; rows only one side has are dropped from both, so the comparison is like for like.

    Raises:
        ForcedPromotionError: ``force_promote`` without ``force_reason``.
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import ModelLoadError, load_model

    require_force_reason(force_promote, force_reason)
    if isinstance(evaluation, dict):
        evaluation = EvaluationResult.from_dict(evaluation)
    if evaluation.winner is None:
        raise TrainingError("the evaluation has no winner to put through gate 2")
    owned = ledger is None
    ledger = ledger or Ledger(settings.ledger_url)
    try:
        production = ledger.production()
    finally:
        if owned:
            ledger.close()

    def model(version: str) -> PropensityModel:
        return evaluation.models.get(version) or load_model(settings, version)

    challenger_model = model(evaluation.winner)
    frames: dict[str, pd.DataFrame] = {}

    def frame_for(service: str) -> pd.DataFrame:
        if service not in frames:
            frames[service] = _ordered(training_frame_for(service))
        return frames[service]

    own = frame_for(challenger_model.feature_service)
    split = _split(settings, own)
    test = own.iloc[split.test].reset_index(drop=True)
    keys = _keys(test)
    notes: list[str] = []
    champion_model: PropensityModel | None = None
    champion_test: pd.DataFrame | None = None
    if production is not None:
        try:
            champion_model = model(production.version)
        except ModelLoadError as exc:
            notes.append(f"The production model {production.version} could not be loaded "
                         f"({exc}), so the first-run rule (the baseline unless beaten, "
                         "absolute floors) applied.")
            logger.warning("champion %s not loadable: %s", production.version, exc)
    if champion_model is not None:
        champion_test = _restrict(frame_for(champion_model.feature_service), keys)
        keys = _keys(champion_test)
        test = _restrict(test, keys)
        champion_test = _restrict(champion_test, _keys(test))
        # same rows, same truth: the labels come from one frame for both models
        champion_test = champion_test.assign(label=test["label"].to_numpy())
        if test.empty:
            notes.append(f"The champion's feature service {champion_model.feature_service!r} "
                         "has none of the challenger's test rows, so the two cannot be "
                         "compared; the gate does not promote without a comparison.")
        if champion_model.feature_service != challenger_model.feature_service:
            notes.append(f"The champion was scored through its own feature service "
                         f"{champion_model.feature_service!r}, the challenger through "
                         f"{challenger_model.feature_service!r}.")
    threshold = settings.training.threshold
    challenger_eval = evaluate_model(challenger_model, test, version=evaluation.winner,
                                     threshold=threshold, explain=False)
    champion_eval = None
    if champion_model is not None and production is not None and champion_test is not None:
        champion_eval = evaluate_model(champion_model, champion_test, version=production.version,
                                       role="champion", threshold=threshold, explain=False)
    baseline_eval = None
    if evaluation.baseline is not None:
        baseline_eval = (challenger_eval if evaluation.baseline == evaluation.winner else
                         evaluate_model(model(evaluation.baseline), test,
                                        version=evaluation.baseline, threshold=threshold,
                                        explain=False))
    # the paired bootstrap resamples the same rows for every model compared
    paired = None
    if len(test):
        scores = {evaluation.winner: challenger_model.predict_proba(test)}
        if (champion_eval is not None and champion_model is not None
                and champion_test is not None):
            scores[champion_eval.version] = champion_model.predict_proba(champion_test)
        if baseline_eval is not None and baseline_eval.version not in scores:
            scores[baseline_eval.version] = model(baseline_eval.version).predict_proba(test)
        paired = PairedScores(labels=test["label"].astype(int).to_numpy(), scores=scores)
    cutoffs = ", ".join(str(c)[:10] for c in split.test_cutoffs)
    context = (f"Compared on {len(test)} identical out-of-time rows (test cutoff(s) {cutoffs}).")
    if notes:
        context = " ".join([context, *notes])
    decision = gate_decision(
        challenger_eval, champion=champion_eval, baseline=baseline_eval, gate=settings.gate,
        paired=paired, force_promote=force_promote, force_reason=force_reason, actor=actor,
        context=context,
    )
    decision.production_version = production.version if production is not None else None
    logger.info("gate 2: %s", decision.explanation)
    return GateOutcome(decision=decision, challenger=challenger_eval, champion=champion_eval,
                       baseline=baseline_eval)


# ---- step 4: record --------------------------------------------------------------------
def record_decision(
    settings: Settings,
    decision: GateDecision | dict[str, Any],
    *,
    run_id: str,
    ledger: Ledger | None = None,
    pending_deploy: bool = False,
) -> str | None:
    """Write the gate's decision to the ledger; returns the replaced version on promotion.

    A promotion only happens if production is still the model the gate compared with; if
    another run promoted meanwhile, the decision is recorded as a rejection (stale) instead.
    With ``pending_deploy`` (the training DAG) a promotion makes the model the ledger's
    candidate and production moves only when gate 3 passes (:mod:`shopflow.deploy.gate`);
    without it (``shopflow train``, which deploys nothing) production moves at once.
    """
    from shopflow.ledger import Ledger, ProductionChangedError

    if isinstance(decision, dict):
        decision = GateDecision.from_dict(decision)
    details = {"run_id": run_id, "forced": decision.forced, "gate_passed": decision.gate_passed,
               "explanation": decision.explanation,
               "reference": {"role": decision.reference_role,
                             "version": decision.reference_version},
               "checks": [asdict(c) for c in decision.checks]}
    owned = ledger is None
    ledger = ledger or Ledger(settings.ledger_url)
    try:
        if decision.promote:
            # promote only if production is still what it was when the gate decided
            expected = decision.production_version
            move = ledger.nominate if pending_deploy else ledger.promote
            if decision.forced:
                return move(decision.challenger_version, actor=decision.actor,
                            reason=decision.reason, details=details)
            try:
                return move(decision.challenger_version, actor=decision.actor,
                            reason=decision.reason, details=details, expected_current=expected)
            except ProductionChangedError as exc:
                logger.warning("gate 2 decision is stale: %s", exc)
                ledger.record_event(
                    kind="rejection", version=decision.challenger_version, actor=decision.actor,
                    reason=f"{decision.challenger_family} candidate {decision.challenger_version} "
                    f"not promoted: {exc}",
                    details={**details, "stale_decision": True})
                return None
        ledger.record_event(kind="rejection", version=decision.challenger_version,
                            reason=decision.reason, actor=decision.actor, details=details)
        return None
    finally:
        if owned:
            ledger.close()


# ---- everything ------------------------------------------------------------------------
def run_training(
    settings: Settings,
    *,
    training_frame_for: TrainingFrameFor,
    run_id: str,
    actor: str = "shopflow",
    force_promote: bool = False,
    force_reason: str | None = None,
    families: list[str] | None = None,
    dry_run: bool = False,
) -> TrainingOutcome:
    """Train every family, evaluate, run gate 2, record it and write the report.

    Args:
        settings: the run's settings.
        training_frame_for: feature service name -> training frame (``user_id``,
            ``event_timestamp`` = cutoff, ``label``, features), e.g. via
            ``shopflow.features.build_training_set``.
        run_id: the Airflow run id (or any unique id), recorded everywhere.
        actor: who triggered the run (recorded with the decision).
        force_promote: promote the winner whatever the gate says (needs ``force_reason``).
        force_reason: why.
        families: families to train (default ``settings.training.families``).
        dry_run: train, evaluate and report, but write nothing to the registry or ledger.

    Raises:
        ForcedPromotionError: ``force_promote`` without a reason (checked before training).
        TrainingDataError: the frame cannot be split out of time.
    """
    from shopflow.evaluation.report import write_report
    from shopflow.ledger import Ledger

    require_force_reason(force_promote, force_reason)
    chosen = list(families or settings.training.families)
    service = settings.features.feature_service
    ledger = Ledger(settings.ledger_url)
    try:
        if "baseline" not in chosen and ledger.production() is None:
            logger.info("no production model yet: training the baseline too (first-run rule)")
            chosen.insert(0, "baseline")
        frame = training_frame_for(service)
        started = time.perf_counter()
        candidates: list[CandidateResult] = []
        failures: dict[str, str] = {}
        for family in chosen:
            try:
                candidates.append(train_family(settings, family, frame, run_id,
                                               feature_service=service, dry_run=dry_run,
                                               ledger=ledger))
            except (TrainingDataError, ForcedPromotionError):
                raise  # the data is unusable for every family
            except Exception as exc:  # one broken family must not sink the others
                logger.exception("training %s failed; going on without it", family)
                failures[family] = f"{type(exc).__name__}: {exc}"
        if not candidates:
            raise TrainingError(f"every family failed: {failures}")
        logger.info("trained %d candidate(s) in %.1fs", len(candidates),
                    time.perf_counter() - started)
        evaluation = evaluate_candidates(settings, candidates, frame, run_id=run_id,
                                         dry_run=dry_run, ledger=ledger)
        frames = {service: frame}

        def cached_frame_for(name: str) -> pd.DataFrame:
            if name not in frames:
                frames[name] = training_frame_for(name)
            return frames[name]

        gate = decide(settings, evaluation, training_frame_for=cached_frame_for, actor=actor,
                      force_promote=force_promote, force_reason=force_reason, ledger=ledger)
        promoted = previous = None
        if not dry_run:
            previous = record_decision(settings, gate.decision, run_id=run_id, ledger=ledger)
            promoted = gate.decision.challenger_version if gate.decision.promote else None
        evaluations = list(evaluation.evaluations)
        if gate.champion is not None:
            evaluations.append(gate.champion)
        report = write_report(settings, run_id, evaluations, winner=evaluation.winner,
                              decision=gate.decision, split=evaluation.split,
                              trials=evaluation.trials, training=evaluation.training,
                              age_curve=evaluation.age_curve)
    finally:
        ledger.close()
    return TrainingOutcome(run_id=run_id, candidates=candidates, evaluation=evaluation,
                           gate=gate, report_path=report, promoted_version=promoted,
                           previous_version=previous, dry_run=dry_run, failures=failures)
