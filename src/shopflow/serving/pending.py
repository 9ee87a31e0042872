"""A starting service deploys the candidate a run left pending, through gate 3.

A training run with no service answering cannot run gate 3, so its promoted model stays
the ledger's ``candidate`` (deploy pending) and production does not move. When a service
starts, it follows that candidate (loads, checks and serves it) and this runs gate 3
against the service itself in a background thread: golden requests and the traffic window
over HTTP, as the pipeline's deploy task would; production moves only if it passes, else
the candidate is dropped and the service goes back to production. Only at start: while a
service is up, a run's own deploy task runs gate 3, and two gates on one candidate would
only measure each other's traffic.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: The ledger actor of gate 3 runs the service starts itself.
PENDING_ACTOR = "shopflow-serving:gate3"


def deploy_pending_at_start(settings: Settings) -> threading.Thread | None:
    """Start gate 3 on the pending candidate in a daemon thread (None: nothing pending)."""
    from shopflow.ledger import Ledger

    if not settings.serving.deploy_pending_on_start:
        return None
    try:
        with Ledger(settings.ledger_url) as ledger:
            pending = ledger.pending()
    except Exception as exc:  # serving goes on; `shopflow deploy --pending` can do it later
        logger.warning("could not read the deploy-pending candidate: %s", exc)
        return None
    if pending is None:
        return None
    logger.info("candidate %s is deploy pending: running gate 3 against this service",
                pending.version)
    thread = threading.Thread(target=_run_gate3, args=(settings,), daemon=True,
                              name="shopflow-pending-deploy")
    thread.start()
    return thread


def _run_gate3(settings: Settings) -> None:
    from shopflow.alerts import send_alert
    from shopflow.deploy import DeployFailed, deploy_pending
    from shopflow.serving.online import snapshot_user_ids

    try:
        report = deploy_pending(settings, actor=PENDING_ACTOR,
                                golden_user_ids=snapshot_user_ids(settings))
    except DeployFailed as exc:
        send_alert(settings, "gate_blocked", f"gate 3 at service start: {exc}",
                   {"stage": "post_deploy", "report": exc.report.asdict()})
    except Exception:  # a failed check must never take the service down
        logger.exception("gate 3 on the pending candidate could not run; it stays pending")
    else:
        if report is not None:
            logger.info("pending candidate %s passed gate 3 and is in production",
                        report.version)
