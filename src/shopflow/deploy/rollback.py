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
    from shopflow.ledger import Ledger
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
    from_version: str | None = None,
    run_id: str | None = None,
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
        from_version: the production version the caller saw and judged bad; the
            rollback happens only if production is still that version (compare-and-set:
            a concurrent second rollback of the same model is refused, not repeated).
            None: whatever production is when this reads it (still moved atomically).
        run_id: the run this rollback belongs to (the rollback DAG's): if the ledger
            already has this run's rollback, that one is returned and nothing moves, so a
            retried task never rolls back twice.

    Raises:
        RollbackError: no reason, nothing to roll back to, the target is already in
            production, it is not in the model store, or production is no longer
            ``from_version`` (another rollback or promotion moved it first).
    """
    from shopflow.ledger import Ledger, LedgerError, ProductionChangedError

    if not reason or not reason.strip():
        raise RollbackError("a rollback needs a reason (--reason TEXT)")
    try:
        ledger = Ledger(settings.ledger_url, model=model)
    except LedgerError as exc:
        raise RollbackError(str(exc)) from exc
    what = "production model" if model == PROPENSITY_MODEL else f"production {model}"
    try:
        done = _rollback_of_run(ledger, run_id)
        if done is not None:
            logger.info("run %s already rolled back %s from %s to %s: not again", run_id,
                        what, done.from_version, done.to_version)
            return done
        current = ledger.production()
        current_version = current.version if current is not None else None
        if from_version is not None and current_version != from_version:
            raise RollbackError(
                f"{what} is {current_version}, not {from_version}: it moved since the "
                "rollback was decided (another rollback or promotion came first); nothing done"
            )
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
        try:
            ledger.record_rollback(
                to_version=target,
                reason=reason,
                actor=actor,
                details={"from_version": current_version, **(details or {}),
                         **({"run_id": run_id} if run_id else {})},
                expected_current=current_version,
            )
        except ProductionChangedError as exc:
            raise RollbackError(f"rollback of {what} {current_version} refused: {exc}") from exc
    finally:
        ledger.close()
    from shopflow.alerts import send_alert

    send_alert(settings, "rollback",
               f"{what} rolled back from {current_version} to {target}: {reason}",
               {"model": model, "from_version": current_version, "to_version": target,
                "reason": reason, "actor": actor, **(details or {})})
    return RollbackResult(from_version=current_version, to_version=target, reason=reason,
                          actor=actor)


def _rollback_of_run(ledger: Ledger, run_id: str | None) -> RollbackResult | None:
    """The rollback ``run_id`` already recorded, if any (a retried task must not repeat it)."""
    if not run_id:
        return None
    for event in reversed(ledger.events(kind="rollback")):
        if event.details.get("run_id") == run_id and event.version is not None:
            return RollbackResult(from_version=event.previous_version, to_version=event.version,
                                  reason=event.reason, actor=event.actor)
    return None


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
