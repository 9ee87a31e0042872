"""Run the dbt project in process, with the run's settings, and report every node.

dbt is driven through its programmatic entry point (``dbtRunner``, dbt-core 1.11) rather
than a subprocess, so the pipeline gets typed per-node results (status, time, message)
and a failure arrives as a :class:`DbtError` naming the failing nodes. Connection details
reach ``dbt_project/profiles.yml`` as environment variables (set for the duration of the
run only), the task durations as dbt vars; dbt's target and log folders live in
``SHOPFLOW_HOME/dbt``, never inside the repository.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Statuses that mean a node did not do its job (a skipped node sat behind one of them).
FAILED_STATUSES = frozenset({"error", "fail", "runtime error", "skipped"})
#: Node types whose ``fail`` status is a verdict on the data or the models.
_TEST_TYPES = frozenset({"test", "unit_test"})
#: Commands that accept --full-refresh.
_FULL_REFRESH_COMMANDS = frozenset({"build", "run", "seed"})
#: dbt keeps process-wide state (flags, adapters) and run_dbt sets environment variables,
#: so two runs in one process (e.g. parallel in-process Airflow tasks) take turns.
_DBT_LOCK = threading.Lock()


class DbtError(RuntimeError):
    """dbt could not run, or some node failed; ``failures`` names each failing node.

    Attributes:
        failures: the nodes that errored, failed or were skipped because of them.
        result: everything dbt reported (None when dbt could not start at all).
    """

    def __init__(
        self,
        message: str,
        *,
        failures: list[NodeResult] | None = None,
        result: DbtRunResult | None = None,
    ) -> None:
        super().__init__(message)
        self.failures = failures or []
        self.result = result


class DbtTestFailed(PermanentError, DbtError):
    """A dbt test (data or unit test) failed: the data or a model is wrong, not the run.

    dbt ran and answered; running it again on the same warehouse gives the same answer,
    so the pipeline stops here (blocked, no retry). A :class:`DbtError` that is not a
    test failure (dbt could not start, a model errored) may be a glitch and is retried.
    """


@dataclass(frozen=True)
class NodeResult:
    """One model, test, unit test or source that dbt ran."""

    unique_id: str
    name: str
    resource_type: str
    status: str
    execution_time: float
    message: str | None = None
    failures: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATUSES


@dataclass(frozen=True)
class DbtRunResult:
    """What a dbt command did: every node in completion order, and the wall time."""

    command: str
    success: bool
    elapsed_seconds: float
    nodes: list[NodeResult] = field(default_factory=list)

    @property
    def failures(self) -> list[NodeResult]:
        return [node for node in self.nodes if node.failed]

    def status_counts(self) -> dict[str, int]:
        """How many nodes ended in each status, e.g. ``{"success": 6, "pass": 40}``."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.status] = counts.get(node.status, 0) + 1
        return counts

    def node(self, name: str) -> NodeResult:
        """The node called ``name`` (a model/test name or a full unique_id)."""
        for node in self.nodes:
            if name in (node.name, node.unique_id):
                return node
        raise KeyError(f"dbt {self.command} ran no node named {name!r}")


def dbt_project_dir() -> Path:
    """The dbt project shipped with Shopflow (``<repo>/dbt_project``)."""
    project = Path(__file__).resolve().parents[3] / "dbt_project"
    if not (project / "dbt_project.yml").is_file():
        raise DbtError(f"dbt project not found at {project} (dbt_project.yml missing)")
    return project


def dbt_vars(settings: Settings) -> dict[str, Any]:
    """The project vars for this run: schema prefix, task durations, feature windows, the
    columns that make two raw rows one event (``quality.duplicate_key``), and when the
    leakage tests recount a sample of shoppers (``quality.leakage_sample_*``).

    Durations are whole seconds; ``feature_window_seconds`` is the resolved window list
    (:func:`shopflow.features.windows.task_windows`), shortest first.
    """
    from shopflow.features.windows import task_windows

    task = settings.task
    return {
        "schema_prefix": settings.warehouse.schema_prefix,
        "event_key": list(settings.quality.duplicate_key),
        "horizon_seconds": _whole_seconds(task.horizon.total_seconds(), "task.horizon"),
        "lookback_seconds": _whole_seconds(task.lookback.total_seconds(), "task.lookback"),
        "cutoff_every_seconds": _whole_seconds(
            task.cutoff_every.total_seconds(), "task.cutoff_every"
        ),
        "feature_window_seconds": list(task_windows(settings)),
        "leakage_sample_above_users": settings.quality.leakage_sample_above_users,
        "leakage_sample_fraction": settings.quality.leakage_sample_fraction,
    }


def _whole_seconds(seconds: float, name: str) -> int:
    whole = round(seconds)
    if whole < 1:
        raise DbtError(f"{name} must be at least one second, got {seconds}s")
    return whole


def dbt_env(settings: Settings, *, threads: int | None = None) -> dict[str, str]:
    """Environment variables read by ``dbt_project/profiles.yml`` for this run's warehouse.

    The PostgreSQL password (if the URL has one) goes in ``DBT_ENV_SECRET_PG_PASSWORD``,
    which dbt scrubs from its logs. ``threads`` is dbt's model concurrency; DuckDB's own
    ``memory_limit`` and ``threads`` are those every Shopflow connection gets
    (:func:`shopflow.duckdb_connect.duckdb_settings`); ``temp_directory`` is set by
    :func:`run_dbt` on the instance dbt shares, so dbt spills to the same folder.
    """
    from shopflow.duckdb_connect import duckdb_settings

    env = {
        "DBT_SHOPFLOW_TARGET": settings.warehouse.backend,
        "DBT_SHOPFLOW_DUCKDB_PATH": str(settings.warehouse_path),
        "DBT_SHOPFLOW_THREADS": str(threads or min(4, os.cpu_count() or 1)),
        "DO_NOT_TRACK": "1",
    }
    duck = duckdb_settings(settings)
    env["DBT_SHOPFLOW_DUCKDB_THREADS"] = duck["threads"]
    # DuckDB's own default (80 % of memory) where the machine's size is unknown
    env["DBT_SHOPFLOW_DUCKDB_MEMORY_LIMIT"] = duck.get("memory_limit", "80%")
    if settings.warehouse.backend == "postgres":
        env.update(_postgres_env(settings.warehouse.postgres_url))
    return env


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise DbtError(
            f"warehouse.postgres_url must be a postgresql:// URL, got scheme {parts.scheme!r}"
        )
    database = parts.path.lstrip("/")
    if not database:
        raise DbtError("warehouse.postgres_url names no database (postgresql://host/DBNAME)")
    return {
        "DBT_SHOPFLOW_PG_HOST": parts.hostname or "127.0.0.1",
        "DBT_SHOPFLOW_PG_PORT": str(parts.port or 5432),
        "DBT_SHOPFLOW_PG_USER": unquote(parts.username or "postgres"),
        "DBT_ENV_SECRET_PG_PASSWORD": unquote(parts.password or ""),
        "DBT_SHOPFLOW_PG_DBNAME": unquote(database),
    }


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def dbt_args(
    settings: Settings,
    *,
    command: str = "build",
    select: str | None = None,
    full_refresh: bool = False,
    project_dir: Path | None = None,
) -> list[str]:
    """The dbt command line for this run (also useful to reproduce a run by hand)."""
    project = project_dir or dbt_project_dir()
    state = settings.home_dir / "dbt"
    args = [
        *command.split(),
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target-path", str(state / "target"),
        "--log-path", str(state / "logs"),
        "--vars", json.dumps(dbt_vars(settings), sort_keys=True),
    ]
    if select:
        args += ["--select", *select.split()]
        if command.split()[0] in {"build", "test"}:
            # a test runs only when everything it reads is selected or already built
            # upstream: `--select stg_shop__events` must not run the leakage tests,
            # which also read marts that this run does not build
            args += ["--indirect-selection", "buildable"]
    if full_refresh:
        if command.split()[0] not in _FULL_REFRESH_COMMANDS:
            raise DbtError(f"--full-refresh does not apply to dbt {command}")
        args.append("--full-refresh")
    return args


def run_dbt(
    settings: Settings,
    *,
    command: str = "build",
    select: str | None = None,
    full_refresh: bool = False,
    on_node: Callable[[NodeResult], None] | None = None,
    quiet: bool = True,
    project_dir: Path | None = None,
) -> DbtRunResult:
    """Run a dbt command on the warehouse configured in ``settings``.

    Args:
        settings: the run's settings (backend, schema prefix, task durations, home).
        command: the dbt command, e.g. ``"build"``, ``"run"``, ``"test"``,
            ``"source freshness"``.
        select: a dbt selection (``"marts"``, ``"+user_features"``); None: everything.
        full_refresh: rebuild incremental models from scratch (needed after raw events
            were deleted or rewritten, since staging only appends).
        on_node: called with each node as it finishes, for live progress output.
        quiet: keep dbt's own console lines to warnings and errors (its full log is in
            ``SHOPFLOW_HOME/dbt/logs/dbt.log`` either way).
        project_dir: another copy of the dbt project (tests); default: the shipped one.

    Returns:
        Every node dbt ran, with status and seconds.

    Raises:
        DbtTestFailed: a data or unit test failed (a :class:`DbtError` that is permanent).
        DbtError: dbt could not start (bad project, unreachable database) or any node
            errored or failed; ``failures`` lists the nodes, the message their errors.
    """
    from dbt.cli.main import dbtRunner

    args = dbt_args(
        settings, command=command, select=select, full_refresh=full_refresh,
        project_dir=project_dir,
    )
    if quiet:
        args[len(command.split()):len(command.split())] = ["--log-level", "warn"]
    (settings.home_dir / "dbt").mkdir(parents=True, exist_ok=True)
    callback = _NodeCallback(on_node)
    logger.info(
        "dbt %s on %s (%s)%s", command, settings.warehouse.backend,
        _where(settings), f", select {select!r}" if select else "",
    )
    with _DBT_LOCK, _environ(dbt_env(settings)), _duckdb_instance(settings):
        started = time.perf_counter()
        outcome = dbtRunner(callbacks=[callback]).invoke(args)
        elapsed = time.perf_counter() - started

    nodes = _node_results(outcome.result)
    result = DbtRunResult(
        command=command,
        success=bool(outcome.success) and not any(node.failed for node in nodes),
        elapsed_seconds=elapsed,
        nodes=nodes,
    )
    if outcome.exception is not None:
        raise DbtError(
            f"dbt {command} could not run: {_hint(str(outcome.exception))}", result=result
        ) from outcome.exception
    if not result.success:
        failures = result.failures
        error = DbtTestFailed if any(_is_failed_test(node) for node in failures) else DbtError
        raise error(_failure_message(command, failures, settings), failures=failures, result=result)
    logger.info(
        "dbt %s done in %.1fs: %s", command, elapsed,
        ", ".join(f"{count} {status}" for status, count in sorted(result.status_counts().items())),
    )
    return result


@contextmanager
def _duckdb_instance(settings: Settings) -> Iterator[None]:
    """Hold a configured connection to the warehouse file while dbt runs in this process.

    dbt-duckdb opens the same file without a connect-time config, so it shares this DuckDB
    instance and spills to ``warehouse.temp_directory``. The folder cannot go in the
    profile's ``settings:``: dbt-duckdb SETs those on every cursor, and DuckDB refuses to
    SET temp_directory again once it has spilled, even to the same folder.
    """
    if settings.warehouse.backend != "duckdb":
        yield
        return
    from shopflow.duckdb_connect import connect_duckdb

    conn = connect_duckdb(settings, settings.warehouse_path)
    try:
        yield
    finally:
        _close_dbt_duckdb_environment()
        conn.close()


def _close_dbt_duckdb_environment() -> None:
    """Close the DuckDB environment dbt-duckdb keeps for the life of the process.

    dbt-duckdb holds one environment (an open connection to the warehouse file) in a class
    attribute and closes it only at exit. In ``shopflow pipeline run`` every later stage runs
    in the same process, so the warehouse's buffer pool (up to ``warehouse.memory_limit`` of
    cached pages) stayed resident through Feast and training, and the file stayed locked
    against other processes. ``close_all_connections`` is the adapter's own reset; it only
    drops the reference, so the environment is closed here as well. The next dbt call
    opens a fresh one.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    environment: Any = DuckDBConnectionManager._ENV  # the adapter's process-wide environment
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    if environment is not None:
        environment.close()


def _is_failed_test(node: NodeResult) -> bool:
    """A data or unit test whose assertion failed (``fail``), not one that could not run."""
    return node.resource_type in _TEST_TYPES and node.status == "fail"


def _failure_message(command: str, failures: list[NodeResult], settings: Settings) -> str:
    """Name each node that errored or failed, with its message; count the skipped ones."""
    broken = [node for node in failures if node.status != "skipped"]
    skipped = len(failures) - len(broken)
    if not broken:
        return f"dbt {command} failed; see {settings.home_dir / 'dbt' / 'logs' / 'dbt.log'}"
    lines = [f"dbt {command} failed: {len(broken)} node(s) errored or failed"]
    lines += [
        f"  {node.status}: {node.unique_id}: {_hint(node.message or 'no message')}"
        for node in broken
    ]
    if skipped:
        lines.append(f"  ({skipped} downstream node(s) skipped)")
    return "\n".join(lines)


def _where(settings: Settings) -> str:
    if settings.warehouse.backend == "duckdb":
        return str(settings.warehouse_path)
    parts = urlsplit(settings.warehouse.postgres_url)
    prefix = settings.warehouse.schema_prefix
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}" + (
        f", schemas {prefix}*" if prefix else ""
    )


def _hint(message: str) -> str:
    """Add the likely fix to errors whose cause is not dbt's."""
    flat = " ".join(message.split())
    if "raw_events" in flat and ("does not exist" in flat or "not exist" in flat):
        return f"{flat} (no raw events in the warehouse yet: run `shopflow ingest` first)"
    return flat


def _node_results(result: Any) -> list[NodeResult]:
    """Per-node results of any dbt command that has them (build/run/test/freshness...)."""
    nodes = []
    for item in getattr(result, "results", None) or []:
        node = getattr(item, "node", None)
        if node is None:
            continue
        nodes.append(
            NodeResult(
                unique_id=node.unique_id,
                name=node.name,
                resource_type=str(node.resource_type),
                status=str(item.status),
                execution_time=float(item.execution_time or 0.0),
                message=item.message,
                failures=getattr(item, "failures", None),
            )
        )
    return nodes


class _NodeCallback:
    """Turns dbt's NodeFinished events into log lines (and ``on_node`` calls)."""

    def __init__(self, on_node: Callable[[NodeResult], None] | None) -> None:
        self._on_node = on_node

    def __call__(self, event: Any) -> None:
        if event.info.name != "NodeFinished":
            return
        info, run = event.data.node_info, event.data.run_result
        node = NodeResult(
            unique_id=info.unique_id,
            name=info.node_name,
            resource_type=info.resource_type,
            status=run.status or info.node_status,
            execution_time=float(run.execution_time or 0.0),
            message=run.message or None,
            failures=int(run.num_failures) if run.num_failures else None,
        )
        logger.info("%-8s %-60s %6.2fs", node.status, node.unique_id, node.execution_time)
        if self._on_node is not None:
            self._on_node(node)
