"""Rollback: point the production alias back at an earlier model, and say why.

The ledger moves the alias and records the ``rollback`` event in one transaction; the
running service sees the alias move on its next poll and hot-swaps back. The target must
still be in the model store, so a rollback never points production at nothing. A model
is a pickled object with no hidden state, so the same inputs give exactly the outputs it
gave before it was replaced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shopflow.contract import PROPENSITY_MODEL, RECOMMENDER_MODEL
from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class RollbackError(PermanentError, RuntimeError):
    """No model to roll back to, or the named one cannot serve."""


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did."""

    from_version: str | None
    to_version: str
    reason: str
    actor: str


def rollback(
    settings: Settings,
    *,
    to_version: str | None = None,
    reason: str,
    actor: str,
    details: dict[str, Any] | None = None,
    model: str = PROPENSITY_MODEL,
) -> RollbackResult:
    """Move production back to ``to_version`` (default: the previous production model).

    Args:
        settings: ledger URL and model store.
        to_version: the model to serve again; None picks the latest earlier production
            model that production was never rolled back away from.
        reason: why (required, recorded in the ledger).
        actor: who (a person, or the gate that decided).
        details: extra facts for the ledger event (e.g. gate 3's numbers).
        model: which production alias: ``propensity`` (default) or ``recommender``
            (the service hot swaps the recommender the same way).

    Raises:
        RollbackError: no reason, nothing to roll back to, the target is already in
            production, or it is not in the model store.
    """
    from shopflow.ledger import Ledger, LedgerError

    if not reason or not reason.strip():
        raise RollbackError("a rollback needs a reason (--reason TEXT)")
    try:
        ledger = Ledger(settings.ledger_url, model=model)
    except LedgerError as exc:
        raise RollbackError(str(exc)) from exc
    what = "production model" if model == PROPENSITY_MODEL else f"production {model}"
    try:
        current = ledger.production()
        current_version = current.version if current is not None else None
        target = to_version or ledger.previous_production()
        if target is None:
            raise RollbackError(
                f"no earlier {what} to roll back to"
                + (f" (production is {current_version})" if current_version else
                   " (nothing was ever in production)")
            )
        if target == current_version:
            raise RollbackError(f"{model} {target} is already in production")
        _check_stored(settings, model, target)
        ledger.record_rollback(
            to_version=target,
            reason=reason,
            actor=actor,
            details={"from_version": current_version, **(details or {})},
        )
    finally:
        ledger.close()
    logger.warning("rolled back %s from %s to %s: %s (by %s)",
                   what, current_version, target, reason, actor)
    return RollbackResult(from_version=current_version, to_version=target, reason=reason,
                          actor=actor)


def _check_stored(settings: Settings, model: str, version: str) -> None:
    """The rollback target must still be in the model store (never point at nothing)."""
    if model == RECOMMENDER_MODEL:
        from shopflow.recommend.store import MODEL_NAME, list_recommenders

        if version not in {m.version for m in list_recommenders(settings)}:
            raise RollbackError(f"cannot roll back to {version}: {MODEL_NAME}:{version} is not "
                                f"in the model store at {settings.bentoml_home}")
        return
    from shopflow.registry import ModelLoadError, model_info

    try:
        model_info(settings, version)
    except ModelLoadError as exc:
        raise RollbackError(f"cannot roll back to {version}: {exc}") from exc
