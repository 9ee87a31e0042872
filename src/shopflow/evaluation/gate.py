"""Gate 2 (docs/DESIGN.md §6): should the challenger replace the champion?

Both were scored on the same out-of-time rows, each through its own feature service. The
challenger is promoted only if its primary metric beats the champion's by at least
``gate.min_improvement`` and no guard metric (log loss, per-slice ROC AUC) regresses by
more than its tolerance. A more complex family (``gate.complexity``) replacing a simpler
one must clear ``min_improvement`` with the *lower bound* of a paired bootstrap interval of
the gain on the same rows, not just with its point estimate: noise does not buy
complexity.

With no champion, the best candidate, the baseline included, is promoted if it clears
absolute floors (``gate.min_roc_auc``, ``gate.max_ece``, ``gate.min_slice_roc_auc`` on
every guarded slice): a learned winner that does not beat the baseline by
``min_improvement`` (interval lower bound) gives way to the baseline, so a first run
ships something that beats chance. A forced promotion overrides the verdict, but only
with a reason, and the verdict it overrode is kept in the explanation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shopflow.errors import PermanentError
from shopflow.evaluation.metrics import higher_is_better, paired_bootstrap

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from shopflow.evaluation.evaluate import ModelEvaluation
    from shopflow.evaluation.metrics import Interval
    from shopflow.settings import GateSettings

#: Slices without ``positive_rate`` (older evaluations) are guarded from this many rows.
MIN_SLICE_ROWS = 30


@dataclass(frozen=True)
class PairedScores:
    """Labels and each model's scores on the same rows, in the same order (for the bootstrap)."""

    labels: np.ndarray
    scores: Mapping[str, np.ndarray]  # version -> P(buy)


def complexity(family: str, gate: GateSettings) -> int:
    """Rank of ``family`` in ``gate.complexity``; an unknown family ranks above all known."""
    ranks = gate.complexity
    if family in ranks:
        return ranks[family]
    return max(ranks.values(), default=0) + 1


def slice_guard(metrics: Mapping[str, float], min_positives: int) -> tuple[bool, str]:
    """Whether a slice is guarded, and if not why (the report and the gate say the same)."""
    rows = _finite(metrics.get("rows")) or 0.0
    rate = _finite(metrics.get("positive_rate"))
    if rate is None:
        if rows < MIN_SLICE_ROWS:
            return False, f"reported only: {rows:.0f} rows < {MIN_SLICE_ROWS}"
        return True, ""
    positives = round(rows * rate)
    negatives = round(rows) - positives
    if min(positives, negatives) < min_positives:
        return False, (f"reported only: {positives} positives / {negatives} negatives, fewer "
                       f"than gate.min_slice_positives={min_positives} (AUC too noisy to guard)")
    return True, ""


class ForcedPromotionError(PermanentError, ValueError):
    """A forced promotion was asked for without a reason."""


def require_force_reason(force_promote: bool, force_reason: str | None) -> None:
    """The one rule for overriding gate 2: a forced promotion needs a non-blank reason.

    Every way in (``shopflow train --force``, the DAG's params, the training pipeline, the
    gate itself) checks it here, so the rule and its message cannot drift apart.

    Raises:
        ForcedPromotionError: ``force_promote`` without a non-empty ``force_reason``.
    """
    if force_promote and not (force_reason or "").strip():
        raise ForcedPromotionError(
            "a forced promotion needs a reason (--reason TEXT / force_reason): it is recorded "
            "in the ledger with who forced it"
        )


@dataclass(frozen=True)
class Check:
    """One comparison of the gate, with the numbers behind it."""

    name: str
    metric: str
    challenger: float | None
    reference: float | None
    limit: float
    passed: bool
    blocking: bool = True
    note: str = ""
    interval: dict[str, Any] | None = None  # paired bootstrap of the gain (Interval.to_dict)


@dataclass
class GateDecision:
    """The verdict, the checks behind it and a paragraph a person can read."""

    promote: bool
    forced: bool
    challenger_version: str
    challenger_family: str
    reference_role: str | None  # "champion", "baseline" or None
    reference_version: str | None
    primary_metric: str
    checks: list[Check] = field(default_factory=list)
    reason: str = ""
    explanation: str = ""
    actor: str = "shopflow"
    test_rows: int = 0
    production_version: str | None = None  # production when decided (stale-decision check)

    @property
    def gate_passed(self) -> bool:
        """What the gate said on its own, before any forcing."""
        return all(c.passed for c in self.checks if c.blocking)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gate_passed"] = self.gate_passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateDecision:
        data = {k: v for k, v in data.items() if k != "gate_passed"}
        data["checks"] = [Check(**c) for c in data.get("checks", [])]
        return cls(**data)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _interval(
    paired: PairedScores | None, challenger: ModelEvaluation, reference: ModelEvaluation,
    gate: GateSettings,
) -> Interval | None:
    if paired is None or not len(paired.labels):
        return None
    a, b = paired.scores.get(challenger.version), paired.scores.get(reference.version)
    if a is None or b is None:
        return None
    return paired_bootstrap(paired.labels, a, b, metric=gate.primary_metric,
                            resamples=gate.bootstrap_resamples, seed=gate.bootstrap_seed,
                            confidence=gate.bootstrap_confidence,
                            max_rows=gate.bootstrap_max_rows)


def _ci(interval: dict[str, Any] | None) -> str:
    if not interval or not math.isfinite(interval["lower"]):
        return ""
    return (f"{interval['confidence']:.0%} CI [{interval['lower']:+.4f}, "
            f"{interval['upper']:+.4f}], {interval['resamples']} paired resamples, "
            f"seed {interval['seed']}")


def _primary_check(
    challenger: ModelEvaluation, reference: ModelEvaluation, gate: GateSettings, name: str,
    *, paired: PairedScores | None = None,
) -> Check:
    """The primary metric's gain; a more complex challenger must clear it with the CI."""
    metric, min_improvement = gate.primary_metric, gate.min_improvement
    ch, ref = _finite(challenger.metrics.get(metric)), _finite(reference.metrics.get(metric))
    if ch is None or ref is None:
        return Check(name=name, metric=metric, challenger=ch, reference=ref,
                     limit=min_improvement, passed=False, note=f"{metric} is undefined")
    gain = ch - ref if higher_is_better(metric) else ref - ch
    interval = _interval(paired, challenger, reference, gate)
    data = interval.to_dict() if interval is not None else None
    note = f"gain {gain:+.4f}"
    if ci := _ci(data):
        note += f", {ci}"
    more_complex = complexity(challenger.family, gate) > complexity(reference.family, gate)
    if more_complex and interval is not None and math.isfinite(interval.lower):
        passed = interval.lower >= min_improvement - 1e-12
        note += (f"; {challenger.family} is more complex than {reference.family}, so the "
                 f"interval's lower bound must clear {min_improvement}")
    else:
        passed = gain >= min_improvement - 1e-12
    return Check(name=name, metric=metric, challenger=ch, reference=ref, limit=min_improvement,
                 passed=passed, note=note, interval=data)


def _guard_checks(
    challenger: ModelEvaluation, champion: ModelEvaluation, gate: GateSettings
) -> list[Check]:
    checks: list[Check] = []
    for key, tolerance in sorted(gate.guard_tolerances.items()):
        if key.startswith("slice_"):
            metric = key.removeprefix("slice_")
            for column, values in sorted(challenger.slices.items()):
                for value, ch_metrics in sorted(values.items()):
                    ref_metrics = champion.slices.get(column, {}).get(value)
                    if ref_metrics is None:
                        continue
                    ch, ref = _finite(ch_metrics.get(metric)), _finite(ref_metrics.get(metric))
                    name = f"guard {metric} on {column}={value}"
                    guarded, why = slice_guard(ch_metrics, gate.min_slice_positives)
                    if ch is None or ref is None or not guarded:
                        checks.append(Check(name=name, metric=metric, challenger=ch,
                                            reference=ref, limit=tolerance, passed=True,
                                            blocking=False,
                                            note=why or f"reported only: {metric} undefined "
                                            "(one class)"))
                        continue
                    drop = ref - ch if higher_is_better(metric) else ch - ref
                    checks.append(Check(name=name, metric=metric, challenger=ch, reference=ref,
                                        limit=tolerance, passed=drop <= tolerance + 1e-12,
                                        note=f"regression {drop:+.4f} (threshold: "
                                        f"gate.guard_tolerances.{key})"))
            continue
        ch, ref = _finite(challenger.metrics.get(key)), _finite(champion.metrics.get(key))
        name = f"guard {key}"
        if ch is None or ref is None:
            checks.append(Check(name=name, metric=key, challenger=ch, reference=ref,
                                limit=tolerance, passed=True, blocking=False,
                                note="skipped: undefined"))
            continue
        drop = ref - ch if higher_is_better(key) else ch - ref
        checks.append(Check(name=name, metric=key, challenger=ch, reference=ref, limit=tolerance,
                            passed=drop <= tolerance + 1e-12, note=f"regression {drop:+.4f}"))
    return checks


def _floor_checks(candidate: ModelEvaluation, gate: GateSettings) -> list[Check]:
    """The absolute floors a first promotion (no champion) must clear."""
    checks: list[Check] = []
    auc = _finite(candidate.metrics.get("roc_auc"))
    checks.append(Check(
        name=f"floor roc_auc >= {gate.min_roc_auc}", metric="roc_auc", challenger=auc,
        reference=None, limit=gate.min_roc_auc,
        passed=auc is not None and auc >= gate.min_roc_auc - 1e-12,
        note="absolute floor (threshold: gate.min_roc_auc)" if auc is not None
        else "roc_auc undefined (one class in the test rows)"))
    ece = _finite(candidate.metrics.get("ece"))
    if ece is None:
        checks.append(Check(name=f"floor ece <= {gate.max_ece}", metric="ece", challenger=None,
                            reference=None, limit=gate.max_ece, passed=True, blocking=False,
                            note="skipped: ece undefined"))
    else:
        checks.append(Check(name=f"floor ece <= {gate.max_ece}", metric="ece", challenger=ece,
                            reference=None, limit=gate.max_ece,
                            passed=ece <= gate.max_ece + 1e-12,
                            note="calibration bound (threshold: gate.max_ece)"))
    for column, values in sorted(candidate.slices.items()):
        for value, m in sorted(values.items()):
            slice_auc = _finite(m.get("roc_auc"))
            guarded, why = slice_guard(m, gate.min_slice_positives)
            name = f"floor roc_auc on {column}={value}"
            if slice_auc is None or not guarded:
                checks.append(Check(name=name, metric="roc_auc", challenger=slice_auc,
                                    reference=None, limit=gate.min_slice_roc_auc, passed=True,
                                    blocking=False,
                                    note=why or "reported only: roc_auc undefined (one class)"))
                continue
            checks.append(Check(name=name, metric="roc_auc", challenger=slice_auc,
                                reference=None, limit=gate.min_slice_roc_auc,
                                passed=slice_auc >= gate.min_slice_roc_auc - 1e-12,
                                note="slice floor (threshold: gate.min_slice_roc_auc)"))
    return checks


def gate_decision(
    challenger: ModelEvaluation,
    *,
    champion: ModelEvaluation | None,
    baseline: ModelEvaluation | None,
    gate: GateSettings,
    paired: PairedScores | None = None,
    force_promote: bool = False,
    force_reason: str | None = None,
    actor: str = "shopflow",
    context: str = "",
) -> GateDecision:
    """Decide on ``challenger`` and explain it.

    Args:
        challenger: the best candidate, scored on the gate's test rows.
        champion: the production model scored on the same rows, or None.
        baseline: the baseline candidate on the same rows (with no champion, it ships
            unless the challenger beats it by ``min_improvement``).
        gate: ``primary_metric``, ``min_improvement``, guards, floors and the bootstrap.
        paired: labels and scores of the models on the same rows, for the paired bootstrap
            interval of the gain (without it, point estimates decide).
        force_promote: promote ``challenger`` whatever the checks say (needs ``force_reason``).
        force_reason: why; recorded with ``actor``.
        context: a sentence about the rows compared (cutoffs, sizes), put in the paragraph.

    Raises:
        ForcedPromotionError: ``force_promote`` without a non-empty ``force_reason``.
    """
    require_force_reason(force_promote, force_reason)
    metric = gate.primary_metric
    checks: list[Check] = []
    reference_role: str | None = None
    reference: ModelEvaluation | None = None
    chosen = challenger
    baseline_promoted = False
    who = f"{challenger.family} candidate {challenger.version}"
    if champion is not None and champion.version == challenger.version:
        reference_role, reference = "champion", champion
        checks.append(Check(name="not already production", metric=metric,
                            challenger=None, reference=None, limit=0.0, passed=False,
                            note="the challenger is the production model"))
        verdict = f"{who} is already the production model, so there is nothing to promote."
    elif champion is not None:
        reference_role, reference = "champion", champion
        checks.append(_primary_check(challenger, champion, gate,
                                     f"{metric} beats champion by >= {gate.min_improvement}",
                                     paired=paired))
        checks += _guard_checks(challenger, champion, gate)
        verdict = _champion_verdict(who, challenger, champion, metric, gate, checks)
    else:
        verdict, chosen, reference, baseline_promoted = _first_run(
            challenger, baseline, gate, checks, paired=paired)
        reference_role = ("baseline" if reference is baseline and reference is not None
                          else "candidate" if reference is not None else None)
    passed = all(c.passed for c in checks if c.blocking)
    promote = passed or force_promote
    if force_promote:
        chosen = challenger
        reason = f"forced by {actor}: {force_reason}"
        explanation = (
            f"Forced promotion of {who} by {actor}, who gave the reason: \"{force_reason}\". "
            f"On its own the gate would have {'promoted' if passed else 'rejected'} "
            f"{'the baseline' if baseline_promoted else 'it'}: {verdict}"
        )
    else:
        chosen_who = f"{chosen.family} candidate {chosen.version}"
        if baseline_promoted:
            reason = _baseline_reason(chosen_who, challenger, checks, passed, metric, gate)
        else:
            reason = _short_reason(chosen_who, checks, passed, reference_role)
        explanation = f"{verdict} {'It is promoted.' if passed else 'It is not promoted.'}"
    if context:
        explanation = f"{explanation} {context}"
    return GateDecision(
        promote=promote,
        forced=force_promote,
        challenger_version=chosen.version,
        challenger_family=chosen.family,
        reference_role=reference_role,
        reference_version=reference.version if reference else None,
        primary_metric=metric,
        checks=checks,
        reason=reason,
        explanation=explanation.strip(),
        actor=actor,
        test_rows=int(chosen.metrics.get("rows", 0)),
    )


def _first_run(
    challenger: ModelEvaluation, baseline: ModelEvaluation | None, gate: GateSettings,
    checks: list[Check], *, paired: PairedScores | None,
) -> tuple[str, ModelEvaluation, ModelEvaluation | None, bool]:
    """No champion: the winner if it beats the baseline, else the baseline; then floors.

    Appends to ``checks``; returns (verdict, the model that would ship, its reference,
    whether that is the baseline in place of the winner).
    """
    metric = gate.primary_metric
    who = f"{challenger.family} candidate {challenger.version}"
    chosen, reference, baseline_promoted = challenger, None, False
    if baseline is not None and baseline.version != challenger.version:
        compare = _primary_check(
            challenger, baseline, gate,
            f"{metric} beats the baseline by >= {gate.min_improvement} (no champion yet)",
            paired=paired)
        if compare.passed:
            checks.append(compare)
            reference = baseline
            verdict = (f"There is no production model yet, so {who} had to beat the baseline "
                       f"({baseline.family} {baseline.version}) on {metric} by "
                       f"{gate.min_improvement}: {_fmt(compare.challenger)} vs "
                       f"{_fmt(compare.reference)} ({compare.note}) — it does")
        else:
            checks.append(replace(compare, blocking=False,
                                  name=f"{challenger.family} beats the baseline by >= "
                                  f"{gate.min_improvement} (else the baseline ships)"))
            chosen, reference, baseline_promoted = baseline, challenger, True
            verdict = (f"There is no production model yet and {who} did not beat the baseline "
                       f"({baseline.family} {baseline.version}) on {metric} by "
                       f"{gate.min_improvement}: {_fmt(compare.challenger)} vs "
                       f"{_fmt(compare.reference)} ({compare.note}), so the simpler baseline "
                       "is the first-run candidate")
    elif baseline is not None:
        baseline_promoted = True
        verdict = (f"There is no production model yet and the best candidate is the baseline "
                   f"itself ({who}): no learned family beat it")
    else:
        verdict = (f"There is no production model yet and no baseline candidate to compare "
                   f"{who} with, so only the absolute floors apply")
    floors = _floor_checks(chosen, gate)
    checks.extend(floors)
    failed = [c for c in floors if c.blocking and not c.passed]
    if failed:
        verdict += "; it misses the absolute floor(s): " + "; ".join(
            f"{c.name} ({_fmt(c.challenger)})" for c in failed) + "."
    else:
        auc = _finite(chosen.metrics.get("roc_auc"))
        ece = _finite(chosen.metrics.get("ece"))
        verdict += (f"; it clears the absolute floors (roc_auc {_fmt(auc)} >= "
                    f"{gate.min_roc_auc}, ece {_fmt(ece)} <= {gate.max_ece}, guarded slices "
                    f"roc_auc >= {gate.min_slice_roc_auc}).")
    return verdict, chosen, reference, baseline_promoted


def _baseline_reason(
    who: str, winner: ModelEvaluation, checks: list[Check], passed: bool, metric: str,
    gate: GateSettings,
) -> str:
    compare = next((c for c in checks if c.metric == metric and c.reference is not None), None)
    why = "no learned family beat it by min_improvement"
    if compare is not None:
        why += (f" ({winner.family} {_fmt(compare.challenger)} vs {_fmt(compare.reference)}: "
                f"{compare.note.split(';')[0]}; needed {gate.min_improvement})")
    else:
        why += " (the baseline won the evaluation)"
    if passed:
        return f"baseline promoted: {why}"
    failed = [c for c in checks if c.blocking and not c.passed]
    return f"baseline not promoted: {why}, and {who} misses " + "; ".join(
        f"{c.name} ({_fmt(c.challenger)})" for c in failed)


def _champion_verdict(
    who: str, challenger: ModelEvaluation, champion: ModelEvaluation, metric: str,
    gate: GateSettings, checks: list[Check],
) -> str:
    primary = checks[0]
    guards = [c for c in checks[1:] if c.blocking]
    failed = [c for c in guards if not c.passed]
    text = (
        f"{who} was compared with the champion ({champion.family} {champion.version}) on "
        f"{metric}: {_fmt(primary.challenger)} vs {_fmt(primary.reference)} "
        f"({primary.note}; at least {gate.min_improvement:+.4f} required"
        + (", met)" if primary.passed else ", not met)")
    )
    if failed:
        text += "; guard(s) failed: " + "; ".join(
            f"{c.metric} {c.name.removeprefix('guard ').removeprefix(c.metric).strip() or ''} "
            f"{_fmt(c.challenger)} vs {_fmt(c.reference)} ({c.note}, tolerance {c.limit})".replace(
                "  ", " ")
            for c in failed
        )
    elif guards:
        text += f"; all {len(guards)} guard(s) held (log loss and slice ROC AUC within tolerance)"
    return text + "."


def _short_reason(who: str, checks: list[Check], passed: bool, role: str | None) -> str:
    if passed and role is None:
        return f"{who} promoted: no champion, and it clears the absolute floors"
    if passed:
        first = checks[0]
        ci = _ci(first.interval)
        return (f"{who} beats the {role} on {first.metric}: {_fmt(first.challenger)} vs "
                f"{_fmt(first.reference)}" + (f" ({ci})" if ci else ""))
    failed = [c for c in checks if c.blocking and not c.passed]
    return f"{who} rejected: " + "; ".join(
        f"{c.name} failed ({_fmt(c.challenger)} vs {_fmt(c.reference)}"
        + (f", {c.note})" if c.note else ")")
        for c in failed
    )
