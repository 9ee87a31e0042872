"""``shopflow status``: what is in production, since when, why, and the history."""

from __future__ import annotations

import json
from typing import Any

import click

from shopflow.cli.options import config_option, load
from shopflow.contract import RECOMMENDER_MODEL
from shopflow.redact import redact

HEADLINE = ("roc_auc", "pr_auc", "log_loss", "brier")
RECOMMENDER_HEADLINE = ("ndcg@10", "recall@10", "map@10", "hit_rate@10")


@click.command(name="status")
@config_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the docs/DESIGN.md §4 object: production, candidates, events (of the "
              "propensity model), plus a 'recommender' section of the same shape.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many recent candidates and events to show.")
def status(*, config_path: str | None, as_json: bool, limit: int) -> None:
    """Show the production models (since when, why, what they replaced) and recent history.

    The purchase-propensity model first, then the recommender behind /recommend.
    """
    from shopflow.ledger import Ledger

    settings = load(config_path)
    try:
        with Ledger(settings.ledger_url) as ledger:
            data = ledger.status(limit=limit)
    except Exception as exc:  # an unreachable ledger is a clean CLI error, not a traceback
        raise click.ClickException(
            redact(f"cannot read the ledger at {settings.ledger_url}: {type(exc).__name__}: "
                   f"{exc}", settings.ledger_url)
        ) from exc
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    click.echo(render(data))


def _metrics(metrics: dict[str, Any], headline: tuple[str, ...] = HEADLINE) -> str:
    shown = [f"{m} {metrics[m]:.4f}" for m in headline if isinstance(metrics.get(m), int | float)]
    return " · ".join(shown) or "no test metrics recorded"


def render(data: dict[str, Any]) -> str:
    """The human view of :meth:`Ledger.status`: propensity, then the recommender."""
    lines = _render_model(data, title="Production", headline=HEADLINE)
    recommender = data.get(RECOMMENDER_MODEL)
    lines += ["", "=" * 72, ""]
    if recommender is None:
        lines.append("Recommender production: none yet (no recommender has been trained).")
    else:
        lines += _render_model(recommender, title="Recommender production",
                               headline=RECOMMENDER_HEADLINE)
    return "\n".join(lines)


def _render_model(data: dict[str, Any], *, title: str, headline: tuple[str, ...]) -> list[str]:
    lines: list[str] = []
    production = data["production"]
    if production is None:
        lines.append(f"{title}: none yet (no model has been promoted).")
    else:
        lines += [
            f"{title}: {production['version']} ({production.get('family') or 'unknown family'})",
            f"  since:    {production['since']}",
            f"  why:      {production.get('reason') or '-'}",
            f"  replaced: {production.get('previous_version') or 'nothing (first model)'}",
            f"  metrics:  {_metrics(production.get('metrics') or {}, headline)}",
            f"  bento:    {production.get('bento') or 'not packaged (shopflow package)'}",
        ]
    pending = data.get("pending")
    if pending is not None:
        lines.append(f"Deploy pending: {pending['version']} ({pending.get('family') or '?'}) "
                     f"since {pending['since']}, waiting for gate 3 (start `shopflow serve` "
                     "or run `shopflow deploy --pending`)")
    lines.append("")
    lines.append(f"Events ({len(data['events'])} most recent, oldest first):")
    if not data["events"]:
        lines.append("  none")
    for e in data["events"]:
        alias = (e.get("details") or {}).get("alias")
        moved = e["kind"] == "rollback" or (e["kind"] == "promotion" and alias != "candidate") \
            or (e["kind"] == "deployment" and alias == "production")
        arrow = (f"{e.get('previous_version') or '-'} -> {e['version']}" if moved
                 else (e["version"] or "-") + (" (candidate)" if alias == "candidate" else ""))
        forced = " (forced)" if (e.get("details") or {}).get("forced") else ""
        lines.append(f"  {e['at'][:19]}  {e['kind']:<10}{forced} {arrow}  by {e.get('actor')}: "
                     f"{e['reason']}")
    lines.append("")
    lines.append(f"Candidates ({len(data['candidates'])} most recent):")
    if not data["candidates"]:
        lines.append("  none")
    for c in data["candidates"]:
        lines.append(f"  {c['version']:<22} {c['family']:<9} "
                     f"{_metrics(c.get('metrics') or {}, headline)}  run {c.get('run_id') or '-'}")
    return lines
