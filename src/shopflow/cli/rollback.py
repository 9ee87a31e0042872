"""``shopflow rollback [--to VERSION] --reason TEXT``: production back to an earlier model."""

from __future__ import annotations

import getpass

import click

from shopflow.cli.options import config_option, load


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "cli"


@click.command(name="rollback")
@click.option("--to", "to_version", default=None, metavar="VERSION",
              help="Model version to serve again. Default: the previous production model.")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why (required; recorded in the ledger).")
@click.option("--actor", default=None, metavar="NAME",
              help="Who rolls back (recorded). Default: the current user.")
@config_option
def rollback(to_version: str | None, reason: str, actor: str | None,
             config_path: str | None) -> None:
    """Roll the production model back to the previous (or a named) model.

    The running service notices the ledger's alias move within serving.reload_interval
    seconds and hot-swaps back; the rollback is a ledger event with who and why.
    """
    from shopflow.deploy.rollback import RollbackError
    from shopflow.deploy.rollback import rollback as do_rollback

    settings = load(config_path)
    try:
        result = do_rollback(settings, to_version=to_version, reason=reason,
                             actor=actor or _default_actor())
    except RollbackError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"production: {result.from_version} -> {result.to_version} "
               f"(rollback by {result.actor}: {result.reason})")
