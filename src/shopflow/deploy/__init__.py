"""Deployment: gate 3 (post-deploy check with automatic rollback) and manual rollback.

* :func:`deploy(settings, version, *, actor, reason) <shopflow.deploy.gate.deploy>` —
  gate 3: the version becomes the candidate, the service hot-swaps to it, it is checked,
  and only then does production move (raises :class:`DeployFailed`);
* :func:`deploy_pending(settings, *, actor) <shopflow.deploy.gate.deploy_pending>` — gate 3
  for the candidate a run left pending because no service answered;
* :func:`rollback(settings, *, to_version, reason, actor) <shopflow.deploy.rollback.rollback>`
  — production back to the previous (or a named) model, recorded in the ledger.

Both modules are light (httpx, the ledger and the registry are imported when called).
"""

from __future__ import annotations

from shopflow.deploy.client import ServiceClient
from shopflow.deploy.gate import DeployFailed, DeployPending, DeployReport, deploy, deploy_pending
from shopflow.deploy.rollback import RollbackError, RollbackResult, rollback

__all__ = [
    "DeployFailed",
    "DeployPending",
    "DeployReport",
    "RollbackError",
    "RollbackResult",
    "ServiceClient",
    "deploy",
    "deploy_pending",
    "rollback",
]
