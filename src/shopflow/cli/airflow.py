"""``shopflow airflow up``: the local Airflow 3 UI, scheduler and model service in one command."""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING, Any, NoReturn

import click

from shopflow.cli.options import config_option, load

if TYPE_CHECKING:
    from shopflow.orchestration.stack import AirflowStack


@click.group(name="airflow")
def airflow() -> None:
    """Run Shopflow's DAGs on a local Airflow 3 (UI, scheduler, dag-processor, triggerer)."""


@airflow.command(name="up")
@config_option
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port of the UI/API. Default: airflow.port (8080).")
@click.option("--metadata-url", default=None,
              help="Airflow's metadata DB (SQLAlchemy URL). Default: airflow.metadata_url, "
              "else SQLite in SHOPFLOW_HOME/airflow.")
@click.option("--no-service", is_flag=True, help="Do not start the model service.")
def up(*, config_path: str | None, port: int | None, metadata_url: str | None,
       no_service: bool) -> None:
    """Start Airflow (LocalExecutor) and the model service; Ctrl-C stops all of it.

    Prints the UI address and a login whose password is generated for this start (it is
    shown once, here). DAGs come from the repository's dags/, state from SHOPFLOW_HOME.
    With airflow.executor CeleryExecutor (SHOPFLOW_AIRFLOW__EXECUTOR), Celery workers run
    the tasks instead (airflow.celery_workers of them, broker airflow.broker_url).
    """
    from shopflow.orchestration.stack import COMPONENTS, AirflowStack
    from shopflow.processes import ChildExited

    overrides: dict[str, Any] = {}
    if metadata_url:
        overrides["airflow"] = {"metadata_url": metadata_url}
    settings = load(config_path, **overrides)
    stack = AirflowStack(settings, port=port, config_path=config_path,
                         with_service=not no_service)
    _stop_on(signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    started = time.monotonic()
    parts = [*COMPONENTS, *(h.partition("@")[0] for h in stack.worker_hostnames)]
    click.echo(f"Starting Airflow 3 ({', '.join(parts)}) and the model service; "
               f"logs in {stack.log_dir}", err=True)
    try:
        stack.start()
        click.echo(_banner(stack, seconds=time.monotonic() - started))
        child = _wait_for_exit(stack)
        raise click.ClickException(f"{child.name} exited with {child.exit_code()}; stopping "
                                   f"everything. Its log:\n{child.log_tail()}")
    except KeyboardInterrupt:
        click.echo("\nStopping Airflow and the model service ...", err=True)
    except (ChildExited, TimeoutError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        stack.stop()
    click.echo("Stopped; nothing is left running.", err=True)


def _wait_for_exit(stack: AirflowStack) -> Any:
    """Block until a component exits on its own (Ctrl-C raises KeyboardInterrupt here)."""
    while True:
        child = stack.exited()
        if child is not None:
            return child
        time.sleep(1.0)


def _stop_on(*signals: signal.Signals) -> None:
    """Treat SIGTERM/SIGHUP like Ctrl-C, so the ``finally`` that stops the children runs.

    SIGINT is installed too: a shell that starts ``make airflow`` in the background (no job
    control) hands it SIGINT ignored, and Ctrl-C / ``kill -INT`` would then do nothing.
    """

    def interrupt(signum: int, frame: Any) -> NoReturn:
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, interrupt)


def _banner(stack: AirflowStack, *, seconds: float) -> str:
    service = stack.service.url if stack.service is not None else "(not started)"
    return "\n".join([
        "",
        f"Airflow UI      {stack.url}   (ready after {seconds:.0f}s)",
        f"  login         {stack.login.user} / {stack.login.password}",
        "                (generated for this start, shown only here)",
        f"Model service   {service}",
        f"Metadata DB     {_redacted(stack.metadata_url)}",
        _executor_line(stack),
        f"SHOPFLOW_HOME   {stack.settings.home_dir}",
        "DAGs start paused: unpausing shopflow_training starts a run for the last daily",
        "interval at once; a manual trigger then waits for it (max_active_runs=1).",
        "Ctrl-C stops everything.",
        "",
    ])


def _executor_line(stack: AirflowStack) -> str:
    airflow = stack.settings.airflow
    if not stack.worker_hostnames:
        return f"Executor        {stack.executor} (parallelism {airflow.parallelism})"
    return (f"Executor        {stack.executor}: {len(stack.worker_hostnames)} workers x "
            f"{airflow.celery_concurrency} tasks, broker {_redacted(airflow.broker_url)}")


def _redacted(url: str) -> str:
    """The URL without a password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
