"""``shopflow generate``: write synthetic raw events (docs/DESIGN.md §4)."""

from __future__ import annotations

import click

from shopflow.cli.options import config_option, load


@click.command(name="generate")
@click.option("--events", type=click.IntRange(min=1), default=None, metavar="N",
              help="Rows to write (exactly). Default: generator.events (200000).")
@click.option("--days", type=click.IntRange(min=1), default=None, metavar="D",
              help="Length of the period in days. Default: generator.days (120).")
@click.option("--period", default=None, metavar="DURATION",
              help="Length of the period as a duration (6h, 90m, 14d), instead of --days; "
                   "under a day: a minute-level clickstream. Default: generator.period.")
@click.option("--seed", type=int, default=None, metavar="S",
              help="Random seed; same arguments give byte-identical files. Default: generator.seed.")
@click.option("--users", type=click.IntRange(min=1), default=None, metavar="U",
              help="Number of shoppers. Default: generator.users, else events/40.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              metavar="PATH",
              help="File to write (.parquet, .csv or .csv.gz). "
                   "Default: SHOPFLOW_HOME/data/synthetic/events.parquet.")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "csv.gz"]), default=None,
              help="Output format. Default: from the --out suffix.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Progress bar on stderr.")
@config_option
def generate(events: int | None, days: int | None, period: str | None, seed: int | None,
             users: int | None, out_path: str | None, fmt: str | None, progress: bool,
             config_path: str | None) -> None:
    """Write synthetic shop events: view -> cart -> purchase funnels, returns, and real-world
    mess (missing user ids, duplicates, bad prices, late events) at the generator.* rates.

    The prediction signal is learnable but not trivial; see shopflow.ingest.generator.
    """
    from pydantic import ValidationError

    from shopflow.ingest.generator import generate_events, output_format
    from shopflow.settings import GeneratorSettings

    if days is not None and period is not None:
        raise click.UsageError("give the period as --days or --period, not both")
    settings = load(config_path)
    updates = {key: value for key, value in
               {"events": events, "days": days, "period": period, "seed": seed,
                "users": users}.items()
               if value is not None}
    base = settings.generator.model_dump()
    # The dump names the config's period once (days or period); a flag replaces it.
    if days is not None or period is not None:
        base.pop("days", None)
        base.pop("period", None)
    try:
        params = GeneratorSettings.model_validate({**base, **updates})
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from exc
    if out_path is None:
        out_path = str(settings.data_dir / "synthetic" / f"events.{fmt or 'parquet'}")
    try:
        kind = output_format(out_path, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    summary = generate_events(params, out_path, fmt=kind, progress=progress)
    click.echo(
        f"wrote {summary.rows:,} events ({summary.format}) to {summary.path}\n"
        f"  users {summary.users:,}  items {summary.items:,}  sessions {summary.sessions:,}  "
        f"buying sessions {summary.purchase_sessions:,} "
        f"({summary.purchase_sessions / max(summary.sessions, 1):.1%})\n"
        f"  {summary.seconds:.1f}s ({summary.rows_per_second:,.0f} rows/s)"
    )
