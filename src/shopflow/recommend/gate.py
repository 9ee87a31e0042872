"""Gate 2 for recommenders: challenger vs champion on ranking metrics, recorded in a ledger.

The primary metric is NDCG@10 on the same held-out cutoffs for both models (the
champion is re-scored on the challenger's rows, not compared by its old numbers). The
challenger must beat the champion by ``settings.gate.min_improvement`` and must not lose
more than the guard tolerance of Recall@10; with no champion it must beat the
popularity baseline by the same margin.

The decisions go to Shopflow's one ledger under the model name ``recommender``: its own
candidates, events and production alias (``recommender:production``), so a recommender
promotion or rollback never moves the propensity model. ``recommender_ledger`` opens
that ledger bound to the recommender, so every call on it means the recommender.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.contract import RECOMMENDER_MODEL
from shopflow.recommend.metrics import PRIMARY_METRIC

if TYPE_CHECKING:
    from shopflow.ledger import Ledger
    from shopflow.settings import Settings

GUARDS: dict[str, float] = {"recall@10": 0.02}


@dataclass(frozen=True)
class RankingGateDecision:
    """What gate 2 decided for a recommender challenger, and why."""

    promote: bool
    reason: str
    primary: str
    challenger: dict[str, float]
    reference: dict[str, float]
    reference_name: str
    details: dict[str, Any] = field(default_factory=dict)


def decide_recommender(
    challenger: dict[str, float],
    *,
    champion: dict[str, float] | None,
    baseline: dict[str, float],
    primary: str = PRIMARY_METRIC,
    min_improvement: float = 0.002,
    guards: dict[str, float] | None = None,
) -> RankingGateDecision:
    """Promote or reject a challenger by its metrics on the same rows as the reference."""
    guards = GUARDS if guards is None else guards
    reference, name = (champion, "champion") if champion is not None else (baseline, "baseline")
    gain = challenger[primary] - reference[primary]
    regressions = {
        metric: round(reference[metric] - challenger[metric], 6)
        for metric, tolerance in guards.items()
        if metric in challenger and metric in reference
        and reference[metric] - challenger[metric] > tolerance
    }
    details = {"gain": gain, "min_improvement": min_improvement, "guards": guards,
               "regressions": regressions}
    if gain < min_improvement:
        return RankingGateDecision(
            False, f"{primary} {challenger[primary]:.4f} does not beat the {name}'s "
            f"{reference[primary]:.4f} by {min_improvement}", primary, challenger, reference,
            name, details)
    if regressions:
        return RankingGateDecision(
            False, f"guard metric(s) regressed beyond tolerance vs the {name}: {regressions}",
            primary, challenger, reference, name, details)
    return RankingGateDecision(
        True, f"{primary} {challenger[primary]:.4f} beats the {name}'s "
        f"{reference[primary]:.4f} by {gain:.4f}", primary, challenger, reference, name, details)


def recommender_ledger(settings: Settings) -> Ledger:
    """Shopflow's ledger (``settings.ledger_url``), bound to the recommender.

    Calls without ``model=`` read and write the recommender's candidates, events and
    production alias; ``status()`` still shows the propensity model at the top level.
    """
    from shopflow.ledger import Ledger

    return Ledger(settings.ledger_url, model=RECOMMENDER_MODEL)
