"""``shopflow quality``: run a data-quality gate and print its checks as a table."""

from __future__ import annotations

import click

from shopflow.cli.options import config_option, load


@click.command(name="quality")
@click.option("--layer", type=click.Choice(["raw", "staging", "marts"]), required=True,
              help="Which gate: raw (ingested events), staging (stg_shop__events) or marts "
                   "(user/item features, purchase labels).")
@click.option("--batch-id", default=None, metavar="ID",
              help="raw only: gate this ingested batch (quarantined if an error check fails). "
                   "Without it, --layer raw checks the whole raw_events table and changes "
                   "nothing.")
@click.option("--failed-only", is_flag=True, default=False,
              help="Print only the checks that did not pass.")
@click.option("--width", type=click.IntRange(min=16), default=48, show_default=True,
              help="Widest a text cell gets before it is cut.")
@config_option
def quality(layer: str, batch_id: str | None, failed_only: bool, width: int,
            config_path: str | None) -> None:
    """Run the Great Expectations gate of one layer and print each check: severity,
    observed and expected values, pass/fail.

    An `error` failure blocks (exit status 1): a raw batch is moved to the quarantine
    folder, a staging/marts build is recorded as blocked. `warning` failures are printed
    and pass. Data Docs (HTML) and a JSON report are written under SHOPFLOW_HOME/reports.
    """
    from shopflow.quality.context import quiet_gx_logging

    quiet_gx_logging()  # before GX is imported: its import-time chatter is INFO
    from shopflow.quality import GateFailed, QualityError, format_table
    from shopflow.quality.gate import check_raw_table, run_gate

    settings = load(config_path)
    if batch_id is not None and layer != "raw":
        raise click.UsageError("--batch-id applies to --layer raw only")
    try:
        if layer == "raw" and batch_id is None:
            result = check_raw_table(settings)
        else:
            result = run_gate(settings, layer, batch_id=batch_id)  # type: ignore[arg-type]
    except GateFailed as exc:
        result = exc.result
    except QualityError as exc:
        raise click.ClickException(str(exc)) from exc

    click.echo(format_table(result, only_failed=failed_only, width=width))
    click.echo("")
    click.echo(result.headline())
    for note in result.notes:
        click.echo(f"  note: {note}")
    for line in result.where_to_look():
        click.echo(line)
    if not result.success:
        raise SystemExit(1)
