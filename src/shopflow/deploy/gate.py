"""Gate 3 (docs/DESIGN.md §6): deploy a model, watch it serve, and only then make it production.

``deploy`` makes the version the ledger's ``candidate`` (unless gate 2 already did: the
training DAG's promotion nominates, it does not move production), waits until the running
service says it serves that version (the service follows a pending candidate, loading and
checking it first), sends golden requests, then a short window of traffic measuring the
error rate and the p99 latency. Success moves production to the candidate (a
``deployment`` event with the numbers); failure drops the candidate (a ``rejection`` with
the numbers), the service goes back to production, and :class:`DeployFailed` is raised.
Production never holds a model that has not passed gate 3.

With no service answering, nothing can pass gate 3: the candidate stays pending
(``shopflow status`` shows it) until :func:`deploy_pending` runs, from ``shopflow deploy
--pending`` or from a starting ``shopflow serve``.

Deploying the version already in production re-checks it; a failure then rolls
production back to the previous model.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.contract import GOLDEN_UNKNOWN_ID
from shopflow.deploy.client import Answer, ServiceClient, service_url
from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shopflow.ledger import Ledger
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class DeployPending(PermanentError, RuntimeError):
    """Gate 3 could not run (no service answered): the candidate waits, production is unchanged.

    A verdict rather than a glitch (retrying the task does not start a service), so the run
    stops there, recorded as blocked with this error and alerted as ``deploy_pending``.
    """

    def __init__(self, message: str, *, version: str) -> None:
        super().__init__(message)
        self.version = version


class DeployFailed(RuntimeError):
    """Gate 3 failed; production was rolled back (see ``report``)."""

    def __init__(self, message: str, report: DeployReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class DeployReport:
    """Gate 3's numbers, recorded in the ledger either way."""

    version: str
    previous_version: str | None
    swap_seconds: float | None = None
    golden_ok: bool = False
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    failure: str | None = None
    rolled_back_to: str | None = None
    error_examples: list[str] = field(default_factory=list)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


#: ``X-Shopflow-Probe`` value of gate 3's golden requests and traffic window.
PROBE_NAME = "gate3"


def deploy(
    settings: Settings,
    version: str,
    *,
    actor: str,
    reason: str,
    url: str | None = None,
    golden_user_ids: Sequence[str | int] | None = None,
    swap_timeout: float | None = None,
) -> DeployReport:
    """Prove the running service serves ``version`` well, then put it in production.

    Args:
        settings: ledger, model store and the ``serving`` thresholds
            (``post_deploy_window``, ``max_error_rate``, ``max_p99_ms``).
        version: the model to deploy.
        actor: who deploys (recorded).
        reason: why (recorded).
        url: the service (default ``http://serving.host:serving.port``).
        golden_user_ids: ids whose answers must be sane probabilities (an unknown id is
            always added, to exercise the cold-start path).
        swap_timeout: how long to wait for the service to report ``version``
            (default: 3 reload intervals + 30 s).

    Returns:
        The report (also in the ledger's ``deployment`` event).

    Raises:
        DeployFailed: the service refused or never served the version, a golden request
            failed, or the window's error rate or p99 was over its limit; the candidate
            was dropped and production never moved (or, re-checking the production
            model, production was rolled back to the previous model when there was one).
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import ModelLoadError, model_info

    serving = settings.serving
    try:
        model_info(settings, version)
    except ModelLoadError as exc:
        raise DeployFailed(f"cannot deploy {version}: {exc}", DeployReport(version, None)) from exc
    ledger = Ledger(settings.ledger_url)
    try:
        current = ledger.production()
        in_production = current is not None and current.version == version
        if in_production:  # a re-check of the production model: nothing moves
            previous = current.previous_version if current is not None else None
        else:
            previous = _nominated(ledger, version, actor=actor, reason=reason)
        report = DeployReport(version=version, previous_version=previous)
        timeout = swap_timeout if swap_timeout is not None else 3 * serving.reload_interval + 30
        ids = [*(str(u) for u in (golden_user_ids or ())), GOLDEN_UNKNOWN_ID]
        # probe requests: the prediction log keeps them out of gate 4's outcome joins
        with ServiceClient.for_settings(settings, url=url, probe=PROBE_NAME) as client:
            try:
                report.swap_seconds = _wait_for_version(client, version, timeout)
                _golden(client, version, ids)
                report.golden_ok = True
                _window(client, version, ids, serving.post_deploy_window, report)
                _judge(report, max_error_rate=serving.max_error_rate, max_p99_ms=serving.max_p99_ms)
            except _GateFailure as exc:
                report.failure = str(exc)
        if report.failure is None:
            details = report.asdict()
            if in_production:
                ledger.record_event(kind="deployment", version=version, reason=reason,
                                    actor=actor, previous_version=previous, details=details)
            else:  # only now does production move (compare-and-set on the candidate)
                _accept(ledger, version, actor=actor, reason=reason, details=details)
            logger.info("deployed %s: %d requests, error rate %.4f, p99 %.1f ms", version,
                        report.requests, report.error_rate, report.p99_ms or float("nan"))
            return report
        if not in_production:
            ledger.drop_candidate(version, actor=actor,
                                  reason=f"gate 3 failed for {version}: {report.failure}",
                                  details={"stage": "post_deploy", **report.asdict()})
    finally:
        ledger.close()
    if in_production:
        _roll_back(settings, report, actor=actor, url=url)
    else:
        _back_to_production(settings, report, url=url)
    raise DeployFailed(
        f"gate 3 failed for {version}: {report.failure}; "
        + (f"rolled back to {report.rolled_back_to}" if report.rolled_back_to
           else "no previous model to roll back to"),
        report,
    )


def _nominated(ledger: Ledger, version: str, *, actor: str, reason: str) -> str | None:
    """Make ``version`` the candidate unless it already is; returns production's version."""
    pending = ledger.pending()
    if pending is not None and pending.version == version:
        return pending.previous_version
    production = ledger.production()
    return ledger.nominate(version, actor=actor, reason=reason, details={"via": "deploy"},
                           expected_current=production.version if production else None)


def _accept(ledger: Ledger, version: str, *, actor: str, reason: str,
            details: dict[str, Any]) -> None:
    """Move production to the candidate; a concurrent gate 3 that already did is no error."""
    from shopflow.ledger import CandidateChangedError

    try:
        ledger.accept_candidate(version, actor=actor, reason=reason, details=details)
    except CandidateChangedError:
        production = ledger.production()
        if production is None or production.version != version:
            raise
        logger.info("%s was put in production by another gate 3 run meanwhile", version)


def deploy_pending(settings: Settings, *, actor: str, url: str | None = None,
                   golden_user_ids: Sequence[str | int] | None = None) -> DeployReport | None:
    """Run gate 3 on the deploy-pending candidate, if there is one (None: nothing pending).

    What ``shopflow deploy --pending`` and a starting ``shopflow serve`` do, so a model
    promoted while no service answered reaches production only through gate 3.

    Raises:
        DeployFailed: as :func:`deploy` (the candidate is dropped; production unchanged).
    """
    from shopflow.ledger import Ledger

    with Ledger(settings.ledger_url) as ledger:
        pending = ledger.pending()
    if pending is None:
        return None
    return deploy(settings, pending.version, actor=actor, url=url,
                  reason=f"deploy pending since {pending.since:%Y-%m-%d %H:%M} UTC: "
                         f"{pending.reason}",
                  golden_user_ids=golden_user_ids)


class _GateFailure(Exception):
    pass


def _wait_for_version(client: ServiceClient, version: str, timeout: float) -> float:
    """Poll /metadata until the service serves ``version``; fail fast on a refusal."""
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        try:
            meta = client.metadata()
        except Exception as exc:  # service restarting or unreachable: keep polling, bounded
            last = f"{type(exc).__name__}: {exc}"
        else:
            if meta.get("model_version") == version:
                return time.monotonic() - started
            refused = [r for r in meta.get("refused") or [] if r.get("version") == version]
            if refused:  # a pending candidate it refused is no longer followed: stop now
                raise _GateFailure(f"the service refused {version}: {refused[-1].get('reason')}")
            last = f"serving {meta.get('model_version')}"
        time.sleep(0.2)
    raise _GateFailure(f"the service did not serve {version} within {timeout:.0f} s ({last})")


def _check_answer(answer: Answer, version: str, n: int) -> str | None:
    if not answer.ok or answer.body is None:
        return f"HTTP {answer.status}: {answer.error}"
    if answer.body.get("model_version") != version:
        return f"answered by {answer.body.get('model_version')}, not {version}"
    predictions = answer.body.get("predictions") or []
    if len(predictions) != n:
        return f"{len(predictions)} predictions for {n} ids"
    for p in predictions:
        value = p.get("purchase_probability")
        if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value <= 1:
            return f"probability {value!r} for a user is not in [0, 1]"
    return None


def _golden(client: ServiceClient, version: str, ids: list[str]) -> None:
    problem = _check_answer(client.predict(ids), version, len(ids))
    if problem is not None:
        raise _GateFailure(f"golden request failed: {problem}")


def _window(client: ServiceClient, version: str, ids: list[str], seconds: float,
            report: DeployReport, threads: int = 2) -> None:
    """Send traffic for ``seconds`` from ``threads`` callers; record errors and latencies."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def caller() -> None:
        with client.clone() as own:  # one connection pool per thread
            while time.monotonic() < deadline:
                answer = own.predict(ids)
                problem = _check_answer(answer, version, len(ids))
                with lock:
                    latencies.append(answer.seconds)
                    if problem is not None:
                        errors.append(problem)

    workers = [threading.Thread(target=caller, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 30)
    report.requests = len(latencies)
    report.errors = len(errors)
    report.error_rate = len(errors) / len(latencies) if latencies else 0.0
    report.error_examples = sorted(set(errors))[:5]
    if latencies:
        ordered = sorted(latencies)
        report.p50_ms = round(_quantile(ordered, 0.50) * 1000, 3)
        report.p99_ms = round(_quantile(ordered, 0.99) * 1000, 3)


def _quantile(ordered: list[float], q: float) -> float:
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


def _judge(report: DeployReport, *, max_error_rate: float, max_p99_ms: float) -> None:
    if report.error_rate > max_error_rate:
        raise _GateFailure(
            f"error rate {report.error_rate:.4f} over {report.requests} requests is over the "
            f"limit {max_error_rate} (e.g. {report.error_examples[:2]})"
        )
    if report.p99_ms is not None and report.p99_ms > max_p99_ms:
        raise _GateFailure(f"p99 latency {report.p99_ms:.1f} ms is over the limit {max_p99_ms} ms")


def _back_to_production(settings: Settings, report: DeployReport, *, url: str | None) -> None:
    """The failed candidate was dropped: wait (best effort) for the service to leave it."""
    report.rolled_back_to = report.previous_version
    if report.previous_version is not None:
        _confirm_serving(settings, report.previous_version, url=url)


def _confirm_serving(settings: Settings, version: str, *, url: str | None) -> None:
    """Best effort: wait until the service says it serves ``version`` again; warn if not."""
    try:
        with ServiceClient.for_settings(settings, url=url or service_url(settings)) as client:
            _wait_for_version(client, version, 3 * settings.serving.reload_interval + 10)
    except Exception as exc:
        logger.warning("service did not confirm going back to %s: %s", version, exc)


def _roll_back(settings: Settings, report: DeployReport, *, actor: str, url: str | None) -> None:
    from shopflow.deploy.rollback import RollbackError, rollback

    if report.previous_version is None:
        logger.error("gate 3 failed for %s and there is no previous model: %s",
                     report.version, report.failure)
        return
    try:
        rollback(settings, to_version=report.previous_version, actor=actor,
                 from_version=report.version,
                 reason=f"gate 3 failed for {report.version}: {report.failure}",
                 details={"gate": "post_deploy", **report.asdict()})
    except RollbackError as exc:
        logger.error("automatic rollback after gate 3 failed: %s", exc)
        return
    report.rolled_back_to = report.previous_version
    _confirm_serving(settings, report.previous_version, url=url)
