"""Gate 2 (docs/DESIGN.md §6): should the challenger replace the champion?

Both were scored on the same out-of-time rows, each through its own feature service. The
challenger is promoted only if its primary metric beats the champion's by at least
``gate.min_improvement`` and no guard metric (log loss, per-slice ROC AUC) regresses by
more than its tolerance. With no champion it must beat the baseline model. A forced
promotion overrides the verdict, but only with a reason, and the verdict it overrode is
kept in the explanation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.errors import PermanentError
from shopflow.evaluation.metrics import higher_is_better

if TYPE_CHECKING:
    from shopflow.evaluation.evaluate import ModelEvaluation
    from shopflow.settings import GateSettings

MIN_SLICE_ROWS = 30


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


def _primary_check(
    challenger: ModelEvaluation, reference: ModelEvaluation, metric: str, min_improvement: float,
    name: str,
) -> Check:
    ch, ref = _finite(challenger.metrics.get(metric)), _finite(reference.metrics.get(metric))
    if ch is None or ref is None:
        return Check(name=name, metric=metric, challenger=ch, reference=ref,
                     limit=min_improvement, passed=False, note=f"{metric} is undefined")
    gain = ch - ref if higher_is_better(metric) else ref - ch
    return Check(name=name, metric=metric, challenger=ch, reference=ref, limit=min_improvement,
                 passed=gain >= min_improvement - 1e-12, note=f"gain {gain:+.4f}")


def _guard_checks(
    challenger: ModelEvaluation, champion: ModelEvaluation, tolerances: dict[str, float]
) -> list[Check]:
    checks: list[Check] = []
    for key, tolerance in sorted(tolerances.items()):
        if key.startswith("slice_"):
            metric = key.removeprefix("slice_")
            for column, values in sorted(challenger.slices.items()):
                for value, ch_metrics in sorted(values.items()):
                    ref_metrics = champion.slices.get(column, {}).get(value)
                    if ref_metrics is None:
                        continue
                    ch, ref = _finite(ch_metrics.get(metric)), _finite(ref_metrics.get(metric))
                    name = f"guard {metric} on {column}={value}"
                    if ch is None or ref is None or ch_metrics.get("rows", 0) < MIN_SLICE_ROWS:
                        checks.append(Check(name=name, metric=metric, challenger=ch,
                                            reference=ref, limit=tolerance, passed=True,
                                            blocking=False,
                                            note="skipped: slice too small or one class"))
                        continue
                    drop = ref - ch if higher_is_better(metric) else ch - ref
                    checks.append(Check(name=name, metric=metric, challenger=ch, reference=ref,
                                        limit=tolerance, passed=drop <= tolerance + 1e-12,
                                        note=f"regression {drop:+.4f}"))
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


def gate_decision(
    challenger: ModelEvaluation,
    *,
    champion: ModelEvaluation | None,
    baseline: ModelEvaluation | None,
    gate: GateSettings,
    force_promote: bool = False,
    force_reason: str | None = None,
    actor: str = "shopflow",
    context: str = "",
) -> GateDecision:
    """Decide on ``challenger`` and explain it.

    Args:
        challenger: the best candidate, scored on the gate's test rows.
        champion: the production model scored on the same rows, or None.
        baseline: the baseline candidate on the same rows (the bar when there is no champion).
        gate: ``primary_metric``, ``min_improvement`` and ``guard_tolerances``.
        force_promote: promote whatever the checks say (needs ``force_reason``).
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
    who = f"{challenger.family} candidate {challenger.version}"
    if champion is not None and champion.version == challenger.version:
        reference_role, reference = "champion", champion
        checks.append(Check(name="not already production", metric=metric,
                            challenger=None, reference=None, limit=0.0, passed=False,
                            note="the challenger is the production model"))
        verdict = f"{who} is already the production model, so there is nothing to promote."
    elif champion is not None:
        reference_role, reference = "champion", champion
        checks.append(_primary_check(challenger, champion, metric, gate.min_improvement,
                                     f"{metric} beats champion by >= {gate.min_improvement}"))
        checks += _guard_checks(challenger, champion, gate.guard_tolerances)
        verdict = _champion_verdict(who, challenger, champion, metric, gate, checks)
    elif baseline is not None and baseline.version != challenger.version:
        reference_role, reference = "baseline", baseline
        checks.append(_primary_check(challenger, baseline, metric, 1e-9,
                                     f"{metric} beats the baseline (no champion yet)"))
        primary = checks[0]
        verdict = (
            f"There is no production model yet, so {who} had to beat the baseline "
            f"({baseline.family} {baseline.version}) on {metric}: "
            f"{_fmt(primary.challenger)} vs {_fmt(primary.reference)} — "
            + ("it does." if primary.passed else "it does not.")
        )
    else:
        checks.append(Check(name="beats the baseline (no champion yet)", metric=metric,
                            challenger=_finite(challenger.metrics.get(metric)), reference=None,
                            limit=0.0, passed=False,
                            note="no candidate other than the baseline to compare"))
        verdict = (
            f"There is no production model yet and the best candidate is the baseline "
            f"itself ({who}); no model beats the simple one."
            if baseline is not None
            else f"There is no production model and no baseline candidate to compare {who} "
            "with, so the first-run rule cannot be satisfied; train the baseline family too."
        )
    passed = all(c.passed for c in checks if c.blocking)
    promote = passed or force_promote
    if force_promote:
        reason = f"forced by {actor}: {force_reason}"
        explanation = (
            f"Forced promotion of {who} by {actor}, who gave the reason: \"{force_reason}\". "
            f"On its own the gate would have {'promoted' if passed else 'rejected'} it: {verdict}"
        )
    else:
        reason = _short_reason(who, checks, passed, reference_role)
        explanation = f"{verdict} {'It is promoted.' if passed else 'It is not promoted.'}"
    if context:
        explanation = f"{explanation} {context}"
    return GateDecision(
        promote=promote,
        forced=force_promote,
        challenger_version=challenger.version,
        challenger_family=challenger.family,
        reference_role=reference_role,
        reference_version=reference.version if reference else None,
        primary_metric=metric,
        checks=checks,
        reason=reason,
        explanation=explanation.strip(),
        actor=actor,
        test_rows=int(challenger.metrics.get("rows", 0)),
    )


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
    if passed:
        first = checks[0]
        return (f"{who} beats the {role} on {first.metric}: {_fmt(first.challenger)} vs "
                f"{_fmt(first.reference)}")
    failed = [c for c in checks if c.blocking and not c.passed]
    return f"{who} rejected: " + "; ".join(
        f"{c.name} failed ({_fmt(c.challenger)} vs {_fmt(c.reference)}"
        + (f", {c.note})" if c.note else ")")
        for c in failed
    )
