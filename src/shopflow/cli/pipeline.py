"""``shopflow pipeline run``: the training DAG end to end, in process, through Airflow."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from shopflow.cli.options import config_option, load

EXIT_FAILED = 1
EXIT_BLOCKED = 3
EXIT_DEPLOY_PENDING = 4


@click.group(name="pipeline")
def pipeline() -> None:
    """Run Shopflow's Airflow DAGs without a scheduler."""


@pipeline.command(name="run")
@config_option
@click.option(
    "--param",
    "param_items",
    multiple=True,
    metavar="KEY=VALUE",
    help="A run param of the trigger form, e.g. force_promote=true, families=xgboost,baseline, "
    "min_improvement=0.01 (repeatable). `shopflow pipeline params` lists them.",
)
@click.option(
    "--dag",
    "dag_id",
    type=click.Choice(["shopflow_training", "shopflow_features", "shopflow_monitoring",
                       "shopflow_rollback"]),
    default="shopflow_training",
    show_default=True,
    help="Which Shopflow DAG to run.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--verbose", "-v", is_flag=True,
              help="Show Airflow's own log lines (default: they go to a file).")
def run(*, config_path: str | None, param_items: tuple[str, ...], dag_id: str, as_json: bool,
        verbose: bool) -> None:
    """Run shopflow_training (or --dag) in this process: Airflow dag.test, SQLite metadata DB.

    Prints per-stage status and time, gate results, the leaderboard and the decision.
    Exit code: 0 when every task succeeded or was skipped (promoted or champion kept),
    1 when the run or any task failed (e.g. one model family), 3 when a gate blocked it,
    4 when the deploy is pending (promoted, but no service answered for gate 3: start
    `shopflow serve` or run `shopflow deploy --pending`).
    """
    from shopflow.pipeline.params import (
        ParamError,
        parse_param_assignments,
        resolve_params,
        specs_for,
    )
    from shopflow.pipeline.runner import PipelineRunError, run_dag
    from shopflow.pipeline.summary import deploy_pending, format_summary, summary_dict

    try:
        specs = specs_for(dag_id)
        params = parse_param_assignments(param_items, specs)
        if config_path and "config" not in params:
            params["config"] = str(Path(config_path).resolve())
        resolve_params(params, specs)
    except ParamError as exc:
        raise click.UsageError(str(exc)) from exc
    settings = load(params.get("config"))
    settings.ensure_dirs()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    try:
        result = run_dag(settings, dag_id=dag_id, params=params, quiet=not verbose)
    except PipelineRunError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary_dict(result), indent=2, default=str))
    else:
        click.echo(format_summary(result))
    if deploy_pending(result) is not None:
        raise SystemExit(EXIT_DEPLOY_PENDING)
    if result.blocked:
        raise SystemExit(EXIT_BLOCKED)
    if not result.succeeded or result.failed_tasks:
        raise SystemExit(EXIT_FAILED)


@pipeline.command(name="params")
@click.option("--dag", "dag_id", default="shopflow_training", show_default=True,
              help="Which Shopflow DAG's params to list.")
def params(*, dag_id: str) -> None:
    """List a DAG's params (names, defaults, what they do)."""
    from shopflow.pipeline.params import ParamError, specs_for

    try:
        specs = specs_for(dag_id)
    except ParamError as exc:
        raise click.UsageError(str(exc)) from exc
    for name, spec in specs.items():
        click.echo(f"{name} (default: {spec.default!r})\n    {spec.title}: {spec.description}")
