"""Deployment: gate 3 (post-deploy check with automatic rollback) and manual rollback.

* :func:`deploy(settings, version, *, actor, reason) <shopflow.deploy.gate.deploy>` —
  move the production alias, wait for the service to hot-swap, check, roll back on failure
  (raises :class:`DeployFailed`);
* :func:`rollback(settings, *, to_version, reason, actor) <shopflow.deploy.rollback.rollback>`
  — production back to the previous (or a named) model, recorded in the ledger.

Both modules are light (httpx, the ledger and the registry are imported when called).
"""

from __future__ import annotations

from shopflow.deploy.client import ServiceClient
from shopflow.deploy.gate import DeployFailed, DeployReport, deploy
from shopflow.deploy.rollback import RollbackError, RollbackResult, rollback

__all__ = [
    "DeployFailed",
    "DeployReport",
    "RollbackError",
    "RollbackResult",
    "ServiceClient",
    "deploy",
    "rollback",
]
