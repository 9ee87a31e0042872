"""The model ledger: candidates, decisions, deployments, rollbacks and the production alias.

Usage::

    from shopflow.ledger import Ledger

    ledger = Ledger(settings.ledger_url)
    ledger.promote(version, actor="shopflow", reason="beats champion by 0.01 roc_auc")
    ledger.production()   # -> ProductionModel | None
    ledger.status()       # -> the DESIGN.md §4 object
"""

from __future__ import annotations

from shopflow.ledger.schema import EVENT_KINDS, PRODUCTION_ALIAS
from shopflow.ledger.store import (
    CandidateRecord,
    Ledger,
    LedgerError,
    LedgerEvent,
    ProductionChangedError,
    ProductionModel,
    isoformat,
    jsonable,
)

__all__ = [
    "EVENT_KINDS",
    "PRODUCTION_ALIAS",
    "CandidateRecord",
    "Ledger",
    "LedgerError",
    "LedgerEvent",
    "ProductionChangedError",
    "ProductionModel",
    "isoformat",
    "jsonable",
]
