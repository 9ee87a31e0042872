"""``shopflow train``: train candidates, evaluate them and run gate 2, outside Airflow.

For use once the features exist (``shopflow features`` / the pipeline's feature stages):
the training frame comes from Feast's point-in-time join of the published label mart.
"""

from __future__ import annotations

import getpass
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from shopflow.cli.options import config_option, load
from shopflow.settings import MODEL_FAMILIES

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.training.pipeline import TrainingOutcome

HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier", "lift_top_decile", "ece")


@click.command(name="train")
@config_option
@click.option("--family", "families", multiple=True, type=click.Choice(MODEL_FAMILIES),
              help="Family to train (repeatable). Default: training.families of the config.")
@click.option("--force-promote", is_flag=True,
              help="Promote the winner whatever gate 2 says (needs --reason; recorded).")
@click.option("--reason", default=None, help="Why the promotion is forced (with --force-promote).")
@click.option("--run-id", default=None, help="Id recorded with the models and decisions. "
              "Default: manual__<UTC time>.")
@click.option("--actor", default=None, help="Who is training (recorded). Default: cli:<user>.")
@click.option("--frame", "frame_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A ready training frame (Parquet: user_id, event_timestamp, label, features) "
              "for the configured feature service, instead of building it with Feast.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="Hyperparameter trials per family (overrides training.search_trials).")
@click.option("--dry-run", is_flag=True,
              help="Train, evaluate and write the report; change no registry or ledger state.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Log progress (trials, times, rows/s).")
def train(*, config_path: str | None, families: tuple[str, ...], force_promote: bool,
          reason: str | None, run_id: str | None, actor: str | None, frame_path: str | None,
          trials: int | None, dry_run: bool, as_json: bool, verbose: bool) -> None:
    """Train and evaluate candidates, then run gate 2 against the production model.

    Prints the leaderboard (out-of-time test rows), the decision and the report's path.
    Exit code 0 whether or not the challenger was promoted; non-zero when training failed.
    """
    from shopflow.evaluation.gate import ForcedPromotionError, require_force_reason

    try:
        require_force_reason(force_promote, reason)
    except ForcedPromotionError as exc:
        raise click.UsageError(f"--force-promote needs --reason TEXT: {exc}") from exc
    if reason and not force_promote:
        raise click.UsageError("--reason is only used with --force-promote")
    overrides = {"training": {"search_trials": trials}} if trials else {}
    settings = load(config_path, **overrides)
    settings.ensure_dirs()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")

    from shopflow.training.pipeline import TrainingError, run_training
    from shopflow.training.split import TrainingDataError

    cache: dict[str, pd.DataFrame] = {}

    def training_frame_for(service: str) -> pd.DataFrame:
        if service not in cache:
            if frame_path and service == settings.features.feature_service:
                import pandas as pd

                cache[service] = pd.read_parquet(frame_path)
            else:
                from shopflow.features import build_training_set, load_label_entities

                cache[service] = build_training_set(
                    settings, load_label_entities(settings), feature_service=service)
        return cache[service]

    try:
        outcome = run_training(
            settings,
            training_frame_for=training_frame_for,
            run_id=run_id or f"manual__{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S')}",
            actor=actor or f"cli:{_user()}",
            force_promote=force_promote,
            force_reason=reason,
            families=list(families) or None,
            dry_run=dry_run,
        )
    except (TrainingDataError, TrainingError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(outcome.summary(), indent=2, default=str))
        return
    _print_outcome(outcome)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) and value == value else "–"


def _print_outcome(outcome: TrainingOutcome) -> None:
    evaluation = outcome.evaluation
    click.echo(f"run {outcome.run_id}{' (dry run)' if outcome.dry_run else ''}")
    click.echo("\nleaderboard (out-of-time test rows; * = winner on validation)")
    header = f"  {'family':<10} {'version':<22}" + "".join(f"{m:>16}" for m in HEADLINE)
    click.echo(header)
    rows = list(evaluation.evaluations)
    if outcome.gate and outcome.gate.champion is not None:
        rows.append(outcome.gate.champion)
    for e in rows:
        mark = "*" if e.version == evaluation.winner else ("c" if e.role == "champion" else " ")
        click.echo(f"{mark} {e.family:<10} {e.version:<22}"
                   + "".join(f"{_fmt(e.metrics.get(m)):>16}" for m in HEADLINE))
    decision = outcome.decision
    if decision is not None:
        verdict = "PROMOTED" if decision.promote else "NOT PROMOTED"
        click.echo(f"\n{verdict}{' (forced)' if decision.forced else ''}: {decision.explanation}")
    if outcome.promoted_version:
        click.echo(f"production: {outcome.promoted_version}"
                   f" (replaced {outcome.previous_version or 'nothing'})")
    click.echo(f"report: {outcome.report_path}")
