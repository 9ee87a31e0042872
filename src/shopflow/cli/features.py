"""``shopflow features``: apply the Feast definitions, materialize, read online features."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime

import click

from shopflow.cli.options import config_option, load

_DATETIME = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


@click.group(name="features")
def features() -> None:
    """Feast feature store: definitions, online store, reads.

    Typical order after `shopflow transform`: `features apply` (export the marts for
    Feast, register entities/views/services), then `features materialize` (load the
    online store), then `features get --user-id ID`.
    """


@features.command(name="apply")
@config_option
def apply_cmd(config_path: str | None) -> None:
    """Export the published marts for Feast and register the feature definitions.

    Idempotent. The marts are exported when `shopflow transform` has published them
    (SHOPFLOW_HOME/data/marts/*.parquet); the definitions are registered either way.
    """
    from shopflow.features.export import MartExportError, export_marts
    from shopflow.features.schema import FEATURE_TABLES
    from shopflow.features.store import apply_definitions, registry_url

    settings = load(config_path)
    settings.ensure_dirs()
    # the frozen v1 mart is exported when published, never required (see FeatureTable.legacy)
    missing = [t.name for t in FEATURE_TABLES
               if not t.legacy and not t.mart_path(settings).is_file()]
    if missing:
        click.echo(f"marts not published yet ({', '.join(missing)}): registering definitions only")
    else:
        try:
            result = export_marts(settings)
        except MartExportError as exc:
            raise click.ClickException(str(exc)) from exc
        for table in result.tables:
            click.echo(
                f"exported {table.table}: {table.rows_written:,} rows "
                f"({table.exact_duplicates_dropped} duplicates collapsed, "
                f"{table.corrections} corrections), cutoffs {table.min_cutoff} .. {table.max_cutoff}"
            )
    definitions = apply_definitions(settings)
    names = ", ".join(getattr(o, "name", "?") for o in definitions.objects())
    click.echo(
        f"applied Feast project {settings.features.project!r} "
        f"(registry {registry_url(settings).split('@')[-1]}, online {settings.features.online_store}): {names}"
    )


@features.command(name="materialize")
@click.option("--start", type=_DATETIME, default=None,
              help="Window start (UTC). Default: the view's watermark minus "
                   "features.materialize_overlap, or all history on the first run.")
@click.option("--end", type=_DATETIME, default=None, help="Window end (UTC). Default: now.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_option
def materialize_cmd(start: datetime | None, end: datetime | None, as_json: bool,
                    config_path: str | None) -> None:
    """Load the latest features per entity in a window into the online store.

    Incremental (from the recorded watermark) and idempotent (re-running a window changes
    nothing; an older window never overwrites newer values).
    """
    from shopflow.features.materialization import materialize
    from shopflow.features.store import FeatureStoreError

    settings = load(config_path)
    settings.ensure_dirs()
    try:
        result = materialize(settings, start=_utc(start), end=_utc(end))
    except (FeatureStoreError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(
            {"online_store": result.online_store, "views": [
                {"view": v.view, "start": v.start and v.start.isoformat(),
                 "end": v.end.isoformat(), "entities": v.entities, "written": v.written,
                 "skipped_newer": v.skipped_newer, "seconds": round(v.seconds, 3),
                 "rows_per_second": round(v.rows_per_second, 1),
                 "watermark": v.watermark and v.watermark.isoformat()}
                for v in result.views]}, indent=2))
        return
    for v in result.views:
        click.echo(
            f"{v.view}: [{v.start or 'beginning'} .. {v.end}] {v.entities:,} entities, "
            f"{v.written:,} written, {v.skipped_newer:,} kept newer, "
            f"{v.rows_per_second:,.0f}/s; watermark {v.watermark}"
        )


@features.command(name="get")
@click.option("--user-id", "user_ids", multiple=True, metavar="ID",
              help="A user to read (repeat for several).")
@click.option("--item-id", "item_ids", multiple=True, metavar="ID",
              help="An item to read (repeat for several).")
@click.option("--feature-service", default=None,
              help="Feature service for users. Default: features.feature_service.")
@click.option("--json", "as_json", is_flag=True, help="Print records as JSON.")
@config_option
def get_cmd(user_ids: tuple[str, ...], item_ids: tuple[str, ...], feature_service: str | None,
            as_json: bool, config_path: str | None) -> None:
    """Read online features for users and/or items (unknown ids: known=false)."""
    from feast.errors import FeatureServiceNotFoundException

    from shopflow.features.online import get_online_item_features, get_online_user_features

    if not user_ids and not item_ids:
        raise click.UsageError("give at least one --user-id or --item-id")
    settings = load(config_path)
    frames = {}
    try:
        if user_ids:
            frames["users"] = get_online_user_features(
                settings, list(user_ids), feature_service=feature_service)
        if item_ids:
            frames["items"] = get_online_item_features(settings, list(item_ids))
    except (FeatureServiceNotFoundException, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(
            {name: json.loads(frame.to_json(orient="records")) for name, frame in frames.items()},
            indent=2))
        return
    for name, frame in frames.items():
        click.echo(f"# {name}")
        click.echo(frame.set_index(frame.columns[0]).T.to_string())


@features.command(name="env")
@config_option
def env_cmd(config_path: str | None) -> None:
    """Print the environment for the `feast` CLI in feature_repo/ (`eval "$(...)"`)."""
    from shopflow.features.store import feast_env

    for key, value in feast_env(load(config_path)).items():
        click.echo(f"export {key}={shlex.quote(value)}")


@features.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(1, 65535), default=6566, show_default=True,
              help="HTTP port.")
@config_option
def serve_cmd(host: str, port: int, config_path: str | None) -> None:
    """Run Feast's own HTTP feature server (POST /get-online-features) on this store."""
    from shopflow.features.store import get_store

    settings = load(config_path)
    get_store(settings).serve(host=host, port=port, type_="http", no_access_log=True, workers=1)
