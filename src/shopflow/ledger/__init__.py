"""The model ledger: candidates, decisions, deployments, rollbacks and the production alias.

Usage::

    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    ledger.promote(version, actor="shopflow", reason="beats champion by 0.01 roc_auc")
    ledger.production()   # -> ProductionModel | None
    ledger.status()       # -> the docs/DESIGN.md §4 object (+ a "recommender" section)

    # gate 2 in the training DAG nominates; gate 3 moves production once the service
    # serves the candidate well (deploy pending until then)
    ledger.nominate(version, actor="shopflow", reason="...", expected_current=champion)
    ledger.pending()      # -> ProductionModel | None
    ledger.accept_candidate(version, actor="shopflow", reason="gate 3 passed")

    # the recommender's decisions live in the same ledger, under their own alias
    ledger.promote(version, actor="shopflow", reason="...", model="recommender")
    ledger.production(model="recommender")
"""

from __future__ import annotations

from shopflow.contract import MODELS
from shopflow.ledger.schema import (
    CANDIDATE_ALIAS,
    DEFAULT_MODEL,
    EVENT_KINDS,
    PRODUCTION_ALIAS,
    alias_for,
    candidate_alias_for,
)
from shopflow.ledger.store import (
    ALL_MODELS,
    CandidateChangedError,
    CandidateRecord,
    Ledger,
    LedgerError,
    LedgerEvent,
    ProductionChangedError,
    ProductionModel,
    isoformat,
)

__all__ = [
    "ALL_MODELS",
    "CANDIDATE_ALIAS",
    "DEFAULT_MODEL",
    "EVENT_KINDS",
    "MODELS",
    "PRODUCTION_ALIAS",
    "CandidateChangedError",
    "CandidateRecord",
    "Ledger",
    "LedgerError",
    "LedgerEvent",
    "ProductionChangedError",
    "ProductionModel",
    "alias_for",
    "candidate_alias_for",
    "isoformat",
]
