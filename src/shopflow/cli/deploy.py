"""``shopflow deploy [--pending | --version VERSION]``: gate 3 against the running service.

A training run with no service answering ends "deploy pending": its promoted model is the
ledger's candidate and production has not moved. This runs gate 3 on it once a service is
up (a starting ``shopflow serve`` does the same by itself). ``--version`` deploys (or, for
the production model, re-checks) a named version the same way.
"""

from __future__ import annotations

import getpass
import time

import click

from shopflow.cli.options import config_option, load

EXIT_NO_SERVICE = 4  # as `shopflow pipeline run`'s "deploy pending"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry in some containers
        return "cli"


def _wait_for_service(url: str, seconds: float) -> bool:
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=2.0)
            return True
        except httpx.HTTPError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(1.0)


@click.command(name="deploy")
@click.option("--pending", "pending", is_flag=True,
              help="Deploy the candidate a run left pending (the default without --version).")
@click.option("--version", "version", default=None, metavar="VERSION",
              help="Deploy this model version instead (production's: re-check it).")
@click.option("--url", default=None, metavar="URL",
              help="The service. Default: http://serving.host:serving.port.")
@click.option("--wait", "wait_s", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Seconds to wait for the service to answer before giving up.")
@config_option
def deploy(pending: bool, version: str | None, url: str | None, wait_s: float,
           config_path: str | None) -> None:
    """Gate 3: the service serves the model, golden requests and a traffic window check it,
    and only then does production move. Exit 0 when it passed or nothing was pending,
    1 when gate 3 failed (the candidate is dropped; production unchanged), 4 when no
    service answered (still pending)."""
    from shopflow.deploy import DeployFailed, deploy_pending
    from shopflow.deploy import deploy as deploy_version
    from shopflow.deploy.client import service_url
    from shopflow.ledger import Ledger
    from shopflow.monitoring.reference import snapshot_user_ids

    if pending and version:
        raise click.UsageError("give --pending or --version, not both")
    settings = load(config_path)
    url = url or service_url(settings)
    if version is None:
        with Ledger(settings.ledger_url) as ledger:
            waiting = ledger.pending()
        if waiting is None:
            click.echo("nothing is deploy pending")
            return
        click.echo(f"candidate {waiting.version} is deploy pending since "
                   f"{waiting.since:%Y-%m-%d %H:%M} UTC (production: "
                   f"{waiting.previous_version})")
    if not _wait_for_service(url, wait_s):
        click.echo(f"no model service answers at {url}: start `shopflow serve`; the deploy "
                   "stays pending", err=True)
        raise SystemExit(EXIT_NO_SERVICE)
    ids = snapshot_user_ids(settings)
    try:
        if version is None:
            report = deploy_pending(settings, actor=_actor(), url=url, golden_user_ids=ids)
        else:
            report = deploy_version(settings, version, actor=_actor(), url=url,
                                    reason=f"shopflow deploy --version {version}",
                                    golden_user_ids=ids)
    except DeployFailed as exc:
        raise click.ClickException(str(exc)) from exc
    if report is None:  # a starting service got there first
        click.echo("nothing is deploy pending any more")
        return
    click.echo(f"gate 3 passed: {report.version} is in production (was "
               f"{report.previous_version}); {report.requests} requests, error rate "
               f"{report.error_rate:.4f}, p99 {report.p99_ms} ms")
