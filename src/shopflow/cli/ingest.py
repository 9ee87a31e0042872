"""``shopflow ingest``: load the configured source into ``raw.raw_events``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from shopflow.cli.options import config_option, load

if TYPE_CHECKING:
    from shopflow.ingest.loader import IngestSummary


@click.command(name="ingest")
@config_option
@click.option("--path", "source_path", default=None, metavar="PATH",
              help="File or glob to ingest instead of source.path (relative to the current "
                   "directory). Default: source.path, or the synthetic generator.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr. Default: when stderr is a terminal.")
def ingest(config_path: str | None, source_path: str | None, as_json: bool,
           progress: bool | None) -> None:
    """Load the source (CSV, CSV.gz or Parquet; a file or glob) into raw.raw_events.

    Files already ingested (same bytes) are skipped; rows that break the event contract go
    to raw.quarantine with a reason. Prints rows read / ingested / quarantined per file.
    """
    import json

    from shopflow.ingest.loader import IngestError, ingest_source
    from shopflow.warehouse import WarehouseError

    settings = load(config_path)
    settings.ensure_dirs()
    try:
        summary = ingest_source(settings, path=source_path, progress=progress)
    except (IngestError, WarehouseError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2, default=str))
    else:
        click.echo(format_summary(summary))


def format_summary(summary: IngestSummary) -> str:
    """A readable table: one row per file, a total, then quarantine reasons."""
    header = ("file", "status", "read", "ingested", "quarantined", "seconds")
    rows = [
        (
            f.source_file if len(f.source_file) <= 60 else "…" + f.source_file[-59:],
            "skipped (already ingested)" if f.skipped else f"batch {f.batch_id}",
            f"{f.rows_read:,}", f"{f.rows_ingested:,}", f"{f.rows_quarantined:,}",
            f"{f.seconds:.1f}",
        )
        for f in summary.files
    ]
    rows.append(("total", f"{len(summary.batch_ids)} new batch(es)", f"{summary.rows_read:,}",
                 f"{summary.rows_ingested:,}", f"{summary.rows_quarantined:,}",
                 f"{summary.seconds:.1f}"))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    out = [line(header), line(tuple("-" * w for w in widths)), *map(line, rows)]
    if summary.quarantined_by_reason:
        out.append("")
        out.append("quarantined by reason:")
        for reason, count in summary.quarantined_by_reason.items():
            out.append(f"  {reason:<24} {count:>10,}")
    return "\n".join(out)
