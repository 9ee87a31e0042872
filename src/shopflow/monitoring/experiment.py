"""A/B test and shadow readouts on matured labels, and the A/B decision rule.

The unit of an A/B test is the shopper: the split is a sticky hash of the user id
(:mod:`shopflow.serving.experiment`), so each shopper counts once per arm, with the first
prediction served to it in the test and the label that matured after it. Per arm:

* **purchase rate** — shoppers who bought within the horizon / shoppers, with a Wilson
  score interval; the difference (challenger - champion) with Newcombe's interval built
  from the two Wilson intervals;
* **ROC AUC** of the served scores against the labels, with a percentile bootstrap
  interval (seeded, ``serving.experiment.resamples``); the difference's interval
  resamples each arm independently (the arms hold different shoppers).

The decision rule (``serving.experiment``, docs/ARCHITECTURE.md "A/B tests"):

* **continue** while either arm has fewer than ``min_rows_per_arm`` matured shoppers (or
  a metric is undefined: one class only);
* **stop** when the upper bound of the primary metric's difference is below 0, or the
  purchase-rate guardrail is breached (its upper bound is below ``-purchase_rate_tolerance``);
* **promote** when the lower bound of the primary metric's difference is above 0 and the
  purchase rate's lower bound is above ``-purchase_rate_tolerance``;
* **continue** otherwise.

:func:`record_decision` writes a decision to the ledger: *promote* nominates the
challenger (a ``promotion`` event to the candidate alias, as gate 2 of the training DAG
does; gate 3 then deploys it), *stop* is a ``rejection`` of the challenger; both carry
``details.stage == "experiment"`` and the readout's numbers, and the service ends the test
when it sees them. *continue* changes no model, so it is no ledger event (the ledger's
event kinds are fixed); every readout is kept under ``reports_dir/experiments/``.

The shadow log (:mod:`shopflow.serving.shadow`) is read the same way by
:func:`shadow_readout`: agreement of the two models (same side of the decision
threshold), mean and max absolute score difference, and both models' ROC AUC on the
shoppers whose labels matured, with the paired bootstrap interval of the difference.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.evaluation.metrics import weighted_roc_auc
from shopflow.evaluation.uncertainty import SEED
from shopflow.serving.experiment import CHALLENGER, CHAMPION, EXPERIMENT_STAGE

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pandas as pd

    from shopflow.settings import ExperimentSettings, Settings

logger = logging.getLogger(__name__)

DECISIONS = ("promote", "stop", "continue")
#: Columns a frame of matured A/B outcomes must hold (``at`` is optional).
OUTCOME_COLUMNS = ("user", "arm", "model_version", "score", "label")
_CHUNK = 100  # bootstrap resamples weighted at once (bounds memory)


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sound near 0 and 1, unlike the normal one)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_difference(k1: int, n1: int, k2: int, n2: int, *, confidence: float = 0.95
                    ) -> tuple[float, float, float]:
    """``p2 - p1`` with Newcombe's hybrid score interval (method 10, from Wilson intervals)."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan, math.nan)
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence=confidence)
    l2, u2 = wilson_interval(k2, n2, confidence=confidence)
    d = p2 - p1
    lower = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (d, lower, upper)


def bootstrap_roc_auc(y: np.ndarray, p: np.ndarray, *, resamples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """ROC AUC of ``resamples`` row bootstraps of ``(y, p)`` (NaN where one class is drawn)."""
    n = len(y)
    out = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        out.append(weighted_roc_auc(y, p, weights))
    return np.concatenate(out) if out else np.array([])


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not values.size:
        return (math.nan, math.nan)
    tail = 100 * (1 - confidence) / 2
    return (float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))


@dataclass
class ArmOutcome:
    """One arm's outcomes on matured labels."""

    arm: str
    model_version: str | None
    n: int
    purchases: int
    purchase_rate: float
    purchase_rate_ci: tuple[float, float]
    roc_auc: float
    roc_auc_ci: tuple[float, float]


@dataclass
class Difference:
    """Challenger minus champion on one metric, with its interval."""

    estimate: float
    ci: tuple[float, float]


@dataclass
class ExperimentReadout:
    """The per-arm outcomes, the differences and the decision."""

    decision: str
    reason: str
    champion: ArmOutcome
    challenger: ArmOutcome
    differences: dict[str, Difference]
    primary_metric: str
    confidence: float
    min_rows_per_arm: int
    purchase_rate_tolerance: float
    method: str = (
        "one row per shopper and arm (first prediction in the test); purchase rate: Wilson "
        "interval, difference by Newcombe's hybrid score interval; ROC AUC: percentile "
        "bootstrap, arms resampled independently")
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from shopflow.jsonable import jsonable

        answer: dict[str, Any] = jsonable(asdict(self))
        return answer


def first_per_user(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (user, arm): the earliest (by ``at`` when present, else row order)."""
    ordered = frame.sort_values("at", kind="stable") if "at" in frame.columns else frame
    return ordered.drop_duplicates(subset=["user", "arm"], keep="first").reset_index(drop=True)


def _arm_outcome(arm: str, rows: pd.DataFrame, *, confidence: float, resamples: int,
                 rng: np.random.Generator) -> tuple[ArmOutcome, np.ndarray]:
    y = rows["label"].to_numpy(dtype=np.int64)
    p = rows["score"].to_numpy(dtype=np.float64)
    n, k = len(y), int(y.sum())
    versions = rows["model_version"].dropna().unique()
    auc = float(weighted_roc_auc(y, p, np.ones((1, n)))[0]) if n else math.nan
    boots = bootstrap_roc_auc(y, p, resamples=resamples, rng=rng) if n else np.array([])
    outcome = ArmOutcome(
        arm=arm, model_version=str(versions[0]) if len(versions) == 1 else None, n=n,
        purchases=k, purchase_rate=k / n if n else math.nan,
        purchase_rate_ci=wilson_interval(k, n, confidence=confidence), roc_auc=auc,
        roc_auc_ci=_percentiles(boots, confidence))
    return outcome, boots


def read_experiment(outcomes: pd.DataFrame, config: ExperimentSettings, *,
                    champion_version: str | None = None,
                    challenger_version: str | None = None) -> ExperimentReadout:
    """Compare the arms of matured A/B outcomes and apply the decision rule.

    Args:
        outcomes: one row per served prediction with a matured label (columns
            :data:`OUTCOME_COLUMNS`; ``at`` orders a shopper's predictions).
        config: ``serving.experiment`` (confidence, minimum rows, primary metric,
            guardrail tolerance, resamples).
        champion_version: keep only champion-arm rows this version served (None: all).
        challenger_version: keep only challenger-arm rows this version served (None: all).

    Raises:
        ValueError: a required column is missing (named), or a label is not 0/1.
    """
    missing = [c for c in OUTCOME_COLUMNS if c not in outcomes.columns]
    if missing:
        raise ValueError(f"A/B outcomes lack column(s) {missing}; need {list(OUTCOME_COLUMNS)}")
    frame = outcomes[outcomes["arm"].isin((CHAMPION, CHALLENGER))
                     & outcomes["score"].notna() & outcomes["label"].notna()]
    for arm, version in ((CHAMPION, champion_version), (CHALLENGER, challenger_version)):
        if version is not None:
            frame = frame[(frame["arm"] != arm) | (frame["model_version"] == version)]
    bad = set(frame["label"].unique().tolist()) - {0, 1}
    if bad:
        raise ValueError(f"A/B outcomes: column 'label' must be 0/1, found {sorted(bad)[:5]}")
    frame = first_per_user(frame)
    rng = np.random.default_rng(SEED)
    confidence, resamples = config.confidence, config.resamples
    champion, champion_boots = _arm_outcome(
        CHAMPION, frame[frame["arm"] == CHAMPION], confidence=confidence,
        resamples=resamples, rng=rng)
    challenger, challenger_boots = _arm_outcome(
        CHALLENGER, frame[frame["arm"] == CHALLENGER], confidence=confidence,
        resamples=resamples, rng=rng)
    champion.model_version = champion.model_version or champion_version
    challenger.model_version = challenger.model_version or challenger_version
    rate, rate_lo, rate_hi = rate_difference(champion.purchases, champion.n,
                                             challenger.purchases, challenger.n,
                                             confidence=confidence)
    auc_ci = (_percentiles(challenger_boots - champion_boots, confidence)
              if champion.n and challenger.n else (math.nan, math.nan))
    differences = {
        "purchase_rate": Difference(rate, (rate_lo, rate_hi)),
        "roc_auc": Difference(challenger.roc_auc - champion.roc_auc, auc_ci),
    }
    decision, reason = decide(champion, challenger, differences, config)
    logger.info("A/B readout %s vs %s: %s (%s)", challenger.model_version,
                champion.model_version, decision, reason)
    return ExperimentReadout(
        decision=decision, reason=reason, champion=champion, challenger=challenger,
        differences=differences, primary_metric=config.primary_metric, confidence=confidence,
        min_rows_per_arm=config.min_rows_per_arm,
        purchase_rate_tolerance=config.purchase_rate_tolerance)


def decide(champion: ArmOutcome, challenger: ArmOutcome, differences: dict[str, Difference],
           config: ExperimentSettings) -> tuple[str, str]:
    """The decision rule (module docstring): ``(decision, reason)``."""
    minimum = config.min_rows_per_arm
    short = [a for a in (champion, challenger) if a.n < minimum]
    if short:
        return "continue", "; ".join(
            f"{a.arm} arm has {a.n} matured shoppers of the {minimum} needed" for a in short)
    metric, tolerance = config.primary_metric, config.purchase_rate_tolerance
    primary = differences[metric]
    rate = differences["purchase_rate"]
    level = f"{100 * config.confidence:g}%"
    if not all(math.isfinite(v) for v in (primary.estimate, *primary.ci, *rate.ci)):
        return "continue", (f"{metric} is not defined on both arms yet (one class only): "
                            f"{_numbers(metric, primary)}")
    if primary.ci[1] < 0:
        return "stop", (f"challenger is worse: {metric} difference {_numbers(metric, primary)}"
                        f", {level} upper bound below 0")
    if rate.ci[1] < -tolerance:
        return "stop", (f"guardrail breached: purchase rate difference "
                        f"{_numbers('purchase_rate', rate)}, upper bound below -{tolerance:g}")
    if primary.ci[0] > 0 and rate.ci[0] > -tolerance:
        return "promote", (f"challenger is better: {metric} difference "
                           f"{_numbers(metric, primary)}, {level} lower bound above 0; "
                           f"purchase rate difference {_numbers('purchase_rate', rate)}")
    return "continue", (f"not decided at {level}: {metric} difference "
                        f"{_numbers(metric, primary)}; purchase rate difference "
                        f"{_numbers('purchase_rate', rate)}")


def _numbers(metric: str, difference: Difference) -> str:
    return (f"{difference.estimate:+.4f} [{difference.ci[0]:+.4f}, {difference.ci[1]:+.4f}] "
            f"({metric})")


# ---- the ledger and the readout files -------------------------------------------------
def readouts_dir(reports_dir: Path) -> Path:
    """Where every readout (decisive or not) is kept."""
    return reports_dir / "experiments"


def experiment_decision(settings: Settings, challenger_version: str) -> Any | None:
    """The ledger's experiment decision on ``challenger_version`` (a promotion or a
    rejection with ``details.stage == "experiment"``), or None while undecided."""
    from shopflow.ledger import Ledger

    with Ledger(settings.ledger_url) as ledger:
        decided = [e for e in ledger.events(version=challenger_version)
                   if e.details.get("stage") == EXPERIMENT_STAGE
                   and e.kind in ("promotion", "rejection")]
    return decided[-1] if decided else None


def record_decision(settings: Settings, readout: ExperimentReadout, *, actor: str,
                    run_id: str | None = None) -> dict[str, Any]:
    """Keep the readout and write a *promote* or *stop* to the ledger.

    *promote* nominates the challenger against the champion the readout measured
    (compare-and-set: if production moved meanwhile the decision is void and raises);
    *stop* records a rejection of the challenger. A decision already recorded for this
    challenger is not recorded twice (a retried task).

    Returns:
        ``{"recorded": bool, "event": kind or None, "readout_path": ...}``.

    Raises:
        ProductionChangedError: production is no longer the champion of the readout.
    """
    from datetime import UTC, datetime

    from shopflow import atomic
    from shopflow.ledger import Ledger

    challenger = readout.challenger.model_version
    champion = readout.champion.model_version
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = atomic.write_json(
        readouts_dir(settings.reports_dir) / f"{challenger or 'unknown'}-{stamp}.json",
        {"run_id": run_id, "at": stamp, **readout.to_dict()}, indent=2)
    result: dict[str, Any] = {"recorded": False, "event": None, "readout_path": str(path)}
    if readout.decision == "continue" or challenger is None:
        return result
    if experiment_decision(settings, challenger) is not None:
        logger.info("the experiment's decision on %s is already in the ledger", challenger)
        return result
    details = {"stage": EXPERIMENT_STAGE, "decision": readout.decision, "run_id": run_id,
               "readout": readout.to_dict()}
    reason = f"A/B test {challenger} vs {champion}: {readout.decision}: {readout.reason}"
    with Ledger(settings.ledger_url) as ledger:
        if readout.decision == "promote":
            ledger.nominate(challenger, actor=actor, reason=reason, details=details,
                            expected_current=champion)
            result["event"] = "promotion"
        else:
            ledger.record_event(kind="rejection", version=challenger, reason=reason,
                                actor=actor, previous_version=champion, details=details)
            result["event"] = "rejection"
    result["recorded"] = True
    return result


# ---- shadow -----------------------------------------------------------------------------
@dataclass
class ShadowReadout:
    """Champion vs shadow challenger on the same requests."""

    champion_version: str | None
    challenger_version: str | None
    rows: int
    agreement: float
    mean_abs_delta: float
    max_abs_delta: float
    threshold: float
    matured: int
    champion_roc_auc: float
    challenger_roc_auc: float
    roc_auc_difference: Difference | None

    def to_dict(self) -> dict[str, Any]:
        from shopflow.jsonable import jsonable

        answer: dict[str, Any] = jsonable(asdict(self))
        return answer


def read_shadow(shadow: pd.DataFrame, *, threshold: float, confidence: float = 0.95,
                resamples: int = 500, labels: pd.DataFrame | None = None) -> ShadowReadout:
    """Agreement and score differences of the shadow log, and both models' ROC AUC on the
    shoppers whose labels matured.

    Args:
        shadow: shadow records (``user``, ``champion``, ``challenger``, ``champion_version``,
            ``challenger_version``; ``at`` optional), one challenger version.
        threshold: the decision threshold (``training.threshold``) for agreement.
        labels: matured outcomes with ``user`` and ``label`` (``at`` optional: each shadow
            row takes the label of the same shopper's nearest served prediction).

    Raises:
        ValueError: a required column is missing (named).
    """
    from shopflow.evaluation.metrics import paired_bootstrap

    need = ("user", "champion", "challenger")
    missing = [c for c in need if c not in shadow.columns]
    if missing:
        raise ValueError(f"shadow records lack column(s) {missing}")
    champion = shadow["champion"].to_numpy(dtype=np.float64)
    challenger = shadow["challenger"].to_numpy(dtype=np.float64)
    delta = np.abs(champion - challenger)
    versions = {c: (shadow[c].dropna().unique().tolist() if c in shadow.columns else [])
                for c in ("champion_version", "challenger_version")}
    readout = ShadowReadout(
        champion_version=versions["champion_version"][-1] if versions["champion_version"]
        else None,
        challenger_version=versions["challenger_version"][-1]
        if versions["challenger_version"] else None,
        rows=len(shadow),
        agreement=float(np.mean((champion >= threshold) == (challenger >= threshold)))
        if len(shadow) else math.nan,
        mean_abs_delta=float(delta.mean()) if len(shadow) else math.nan,
        max_abs_delta=float(delta.max()) if len(shadow) else math.nan,
        threshold=threshold, matured=0, champion_roc_auc=math.nan,
        challenger_roc_auc=math.nan, roc_auc_difference=None)
    if labels is None or labels.empty or shadow.empty:
        return readout
    matured = _with_labels(shadow, labels)
    if matured.empty:
        return readout
    y = matured["label"].to_numpy(dtype=np.int64)
    a = matured["challenger"].to_numpy(dtype=np.float64)
    b = matured["champion"].to_numpy(dtype=np.float64)
    ones = np.ones((1, len(y)))
    readout.matured = len(matured)
    readout.champion_roc_auc = float(weighted_roc_auc(y, b, ones)[0])
    readout.challenger_roc_auc = float(weighted_roc_auc(y, a, ones)[0])
    interval = paired_bootstrap(y, a, b, metric="roc_auc", resamples=resamples, seed=SEED,
                                confidence=confidence)
    readout.roc_auc_difference = Difference(interval.gain, (interval.lower, interval.upper))
    return readout


def _with_labels(shadow: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One row per shopper (the first shadow row) with the label of its nearest served
    prediction (by ``at`` when both frames have it, else the shopper's first label)."""
    import pandas as pd

    labelled = labels[labels["label"].notna()]
    if "at" in shadow.columns and "at" in labelled.columns:
        left = shadow.assign(at=pd.to_datetime(shadow["at"], utc=True)).sort_values("at")
        left = left.drop_duplicates("user", keep="first")
        right = labelled[["user", "at", "label"]].assign(
            at=pd.to_datetime(labelled["at"], utc=True)).sort_values("at")
        merged = pd.merge_asof(left, right, on="at", by="user", direction="nearest")
        return merged[merged["label"].notna()].reset_index(drop=True)
    first = labelled.drop_duplicates("user", keep="first")[["user", "label"]]
    return shadow.drop_duplicates("user", keep="first").merge(first, on="user", how="inner")


# ---- the monitoring DAG's readouts, end to end ------------------------------------------
def run_experiment_readout(settings: Settings, *, actor: str, run_id: str | None = None,
                           before_promotion: Callable[[str], Any] | None = None
                           ) -> dict[str, Any]:
    """Read the running A/B test on served, matured traffic and record its decision.

    The challenger is ``serving.experiment.challenger``, else the model that answered the
    newest challenger-arm row of the prediction log. Only rows logged since that
    challenger's first answer count, on both arms (the champion's from before are
    another test's), and only the production model's in the champion arm.

    Args:
        before_promotion: called with the challenger's version before a *promote* is
            written (what monitoring keeps for a new production model).

    Returns:
        ``{"status": "skipped", "reason"}`` or ``{"status": decision, "readout", "record",
        "challenger_version", "champion_version"}``.
    """
    import pandas as pd

    from shopflow.ledger import Ledger
    from shopflow.monitoring.outcomes import served_outcomes

    config = settings.serving.experiment
    if not config.enabled:
        return {"status": "skipped", "reason": "serving.experiment.enabled is false"}
    with Ledger(settings.ledger_url) as ledger:
        production = ledger.production()
        pending = ledger.pending()
    if production is None:
        return {"status": "skipped", "reason": "no production model: nothing to test against"}
    if pending is not None:  # gate 3 decides first; the test is paused meanwhile
        return {"status": "skipped",
                "reason": f"candidate {pending.version} is deploy pending: the test is paused"}
    outcomes = served_outcomes(settings)
    if "arm" not in outcomes.columns:
        outcomes = outcomes.assign(arm=pd.Series([None] * len(outcomes), dtype=object))
    arms = outcomes[outcomes["arm"].isin((CHAMPION, CHALLENGER))]
    challenger = config.challenger
    if challenger is None:
        newest = arms[arms["arm"] == CHALLENGER]
        challenger = str(newest["model_version"].iloc[-1]) if len(newest) else None
    if challenger is None:
        return {"status": "skipped", "pending": int(outcomes.attrs.get("pending", 0)),
                "reason": "no matured challenger-arm rows in the prediction log yet"}
    decided = experiment_decision(settings, challenger)
    if decided is not None:
        return {"status": "skipped", "challenger_version": challenger,
                "reason": f"the ledger already holds the decision on {challenger}: "
                          f"{decided.kind} at {decided.at:%Y-%m-%d %H:%M} ({decided.reason})"}
    mine = arms[(arms["arm"] == CHALLENGER) & (arms["model_version"] == challenger)]
    if len(mine):
        arms = arms[arms["at"] >= mine["at"].min()]
    readout = read_experiment(arms, config, champion_version=production.version,
                              challenger_version=challenger)
    readout.details = {"pending_rows": int(outcomes.attrs.get("pending", 0)),
                       "latest_event": outcomes.attrs.get("latest_event")}
    if readout.decision == "promote" and before_promotion is not None:
        before_promotion(challenger)
    record = record_decision(settings, readout, actor=actor, run_id=run_id)
    return {"status": readout.decision, "challenger_version": challenger,
            "champion_version": production.version, "readout": readout.to_dict(),
            "record": record}


def run_shadow_readout(settings: Settings) -> dict[str, Any]:
    """Read the shadow log of the newest shadow challenger, with matured labels when the
    warehouse has them (the agreement needs none)."""
    import pandas as pd

    from shopflow.monitoring.outcomes import served_outcomes
    from shopflow.serving.shadow import read_shadow_log

    records = read_shadow_log(settings.reports_dir)
    if not records:
        return {"status": "skipped", "reason": "the shadow log is empty (serving.shadow off?)"}
    shadow = pd.DataFrame(records)
    challenger = str(shadow["challenger_version"].iloc[-1])
    shadow = shadow[shadow["challenger_version"] == challenger].reset_index(drop=True)
    labels: pd.DataFrame | None
    labels_error = None
    try:
        labels = served_outcomes(settings)
    except Exception as exc:  # agreement and deltas still stand without labels
        logger.warning("shadow readout without labels: %s", exc)
        labels, labels_error = None, f"{type(exc).__name__}: {exc}"
    config = settings.serving.experiment
    readout = read_shadow(shadow, threshold=settings.training.threshold,
                          confidence=config.confidence, resamples=config.resamples,
                          labels=labels)
    return {"status": "read", **readout.to_dict(), "labels_error": labels_error}
