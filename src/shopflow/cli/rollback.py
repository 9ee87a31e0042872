"""``shopflow rollback [--to VERSION] [--from VERSION] --reason TEXT [--model recommender]``:
production back to an earlier model (the propensity model by default, or the recommender)."""

from __future__ import annotations

import getpass

import click

from shopflow.cli.options import config_option, load
from shopflow.contract import MODELS, PROPENSITY_MODEL


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "cli"


@click.command(name="rollback")
@click.option("--to", "to_version", default=None, metavar="VERSION",
              help="Model version to serve again. Default: the previous production model.")
@click.option("--from", "from_version", default=None, metavar="VERSION",
              help="Roll back only if production is still VERSION (the one you judged bad); "
              "refused if it moved meanwhile.")
@click.option("--reason", required=True, metavar="TEXT",
              help="Why (required; recorded in the ledger).")
@click.option("--actor", default=None, metavar="NAME",
              help="Who rolls back (recorded). Default: the current user.")
@click.option("--model", "model", type=click.Choice(MODELS),
              default=PROPENSITY_MODEL, show_default=True,
              help="Which production model: the purchase-propensity model (/predict) or the "
              "recommender (/recommend).")
@config_option
def rollback(to_version: str | None, from_version: str | None, reason: str, actor: str | None, model: str,
             config_path: str | None) -> None:
    """Roll the production model back to the previous (or a named) model.

    The running service notices the ledger's alias move within serving.reload_interval
    seconds and hot-swaps back; the rollback is a ledger event with who and why.
    With --model recommender the same happens to the recommender behind /recommend.
    """
    from shopflow.deploy.rollback import RollbackError
    from shopflow.deploy.rollback import rollback as do_rollback

    settings = load(config_path)
    try:
        result = do_rollback(settings, to_version=to_version, reason=reason,
                             actor=actor or _default_actor(), model=model,
                             from_version=from_version)
    except RollbackError as exc:
        raise click.ClickException(str(exc)) from exc
    label = "production" if model == PROPENSITY_MODEL else f"{model} production"
    click.echo(f"{label}: {result.from_version} -> {result.to_version} "
               f"(rollback by {result.actor}: {result.reason})")
