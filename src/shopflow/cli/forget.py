"""``shopflow forget USER_ID``: erase one shopper from every store Shopflow keeps."""

from __future__ import annotations

import json

import click

from shopflow.cli.options import config_option, load
from shopflow.redact import redact


@click.command(name="forget")
@click.argument("user_id")
@config_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the forget record (pseudonym, counts per store and location).")
def forget(*, user_id: str, config_path: str | None, as_json: bool) -> None:
    """Erase USER_ID from raw and staged events, marts, published files, the online
    store, training sets, the quarantine and the service's logs; print what was removed.

    The record appended to SHOPFLOW_HOME/privacy/forget.jsonl names the shopper by
    pseudonym (keyed hash) only. Safe to run again: it then removes nothing more.
    Source files are input and are not rewritten: drop the shopper from the shop's export.
    """
    from shopflow.forget import forget as do_forget

    settings = load(config_path)
    try:
        result = do_forget(settings, user_id)
    except Exception as exc:  # a store that cannot be reached is a clean CLI error
        urls = (settings.warehouse.postgres_url, settings.database_url,
                settings.features.registry_url, settings.features.redis_url)
        raise click.ClickException(
            redact(f"forget stopped: {type(exc).__name__}: {exc} (run it again once fixed; "
                   "what was removed stays removed)", *urls)
        ) from exc
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
