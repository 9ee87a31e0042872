"""``shopflow transform``: build the dbt warehouse (staging, intermediate, marts).

Runs ``dbt build`` (models, data tests and unit tests in dependency order) on the
configured warehouse and prints each node as it finishes. Publishing the marts for Feast
is not done here: the pipeline does it after the marts quality gate has passed.
"""

from __future__ import annotations

import click

from shopflow.cli.options import config_option, load


@click.command(name="transform")
@config_option
@click.option(
    "--select",
    "select",
    default=None,
    metavar="SEL",
    help="dbt selection, e.g. 'marts' or '+user_features'. Default: the whole project.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    default=False,
    help="Rebuild incremental models (staging) from scratch, e.g. after raw events were "
    "deleted or re-ingested.",
)
def transform(*, config_path: str | None, select: str | None, full_refresh: bool) -> None:
    """Build the dbt warehouse marts and run their tests (dbt build).

    Prints every model, test and unit test with its status and seconds; exits non-zero
    naming the failing nodes when any fails. dbt's logs and artifacts go to
    SHOPFLOW_HOME/dbt.
    """
    from shopflow.transform import DbtError, NodeResult, run_dbt

    settings = load(config_path)
    settings.ensure_dirs()

    def show(node: NodeResult) -> None:
        colour = {"error": "red", "fail": "red", "runtime error": "red", "skipped": "yellow",
                  "warn": "yellow"}.get(node.status)
        status = click.style(f"{node.status.upper():<8}", fg=colour)
        click.echo(f"{status} {node.resource_type:<9} {node.name:<60} {node.execution_time:6.2f}s")

    click.echo(
        f"dbt build on {settings.warehouse.backend}"
        + (f" (select {select})" if select else "")
        + (" with full refresh" if full_refresh else "")
    )
    try:
        result = run_dbt(settings, select=select, full_refresh=full_refresh, on_node=show)
    except DbtError as exc:
        raise click.ClickException(str(exc)) from exc
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.status_counts().items()))
    click.echo(f"done in {result.elapsed_seconds:.1f}s: {len(result.nodes)} nodes ({counts})")
