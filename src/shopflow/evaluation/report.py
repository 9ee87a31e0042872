"""The HTML report of a training run: leaderboard, plots, slices, the gate's decision.

One self-contained file (PNG plots embedded as base64) at
``settings.reports_dir / "runs" / <run_id> / report.html``, rendered from the JSON-able
evaluations alone, so any DAG task can write it without the models.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow import atomic

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.evaluation.evaluate import ModelEvaluation
    from shopflow.evaluation.gate import GateDecision
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

LEADERBOARD_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1",
                       "lift_top_decile", "ece")
#: Features listed per model under "Top features per model" (the plot shows the winner's 15).
TOP_FEATURES_LISTED = 10

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shopflow training run {{ run_id }}</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
 table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
 th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
 th:first-child, td:first-child, td.l { text-align: left; }
 tr.winner { background: #eef8ee; } tr.champion { background: #eef2fb; }
 .decision { padding: 1rem; border-left: 6px solid {{ '#2a7' if decision and decision.promote else '#c33' }};
             background: #fafafa; }
 .pass { color: #2a7; } .fail { color: #c33; } .muted { color: #888; }
 img { max-width: 48%; margin: 0.5%; border: 1px solid #eee; }
</style></head><body>
<h1>Training run {{ run_id }}</h1>
<p class="muted">Written {{ written_at }} · primary metric <b>{{ primary_metric }}</b> ·
 threshold {{ threshold }}{% if split %} · train {{ split.train.rows }} rows, validation
 {{ split.validation.rows }} rows, test {{ split.test.rows }} rows (cutoffs
 {{ split.test.cutoffs | join(', ') }}){% endif %}</p>
{% if split and split.get('purge') %}<p class="muted">Out of time: {% if split.purge.horizon_days is not none %}a row's
 label window is (cutoff, cutoff + {{ split.purge.horizon_days }} days]; {{ split.purge.rule }}, so
 {{ split.purge.rows }} row(s) at {{ split.purge.cutoffs | length }} cutoff(s) between the parts were purged.
 {% else %}{{ split.purge.rule }}.{% endif %}</p>{% endif %}

<h2>Decision</h2>
{% if decision %}
<div class="decision"><p><b>{{ 'PROMOTED' if decision.promote else 'NOT PROMOTED' }}
 {% if decision.forced %}(forced){% endif %}</b> — {{ decision.explanation }}</p></div>
<table><tr><th>check</th><th>challenger</th><th>reference</th><th>limit</th><th>result</th><th>note</th></tr>
{% for c in decision.checks %}<tr><td>{{ c.name }}</td><td>{{ fmt(c.challenger) }}</td>
 <td>{{ fmt(c.reference) }}</td><td>{{ c.limit }}</td>
 <td class="{{ 'pass' if c.passed else 'fail' }}">{{ 'pass' if c.passed else 'FAIL' }}{% if not c.blocking %} (info){% endif %}</td>
 <td class="l">{{ c.note }}</td></tr>{% endfor %}
</table>
{% for c in decision.checks if c.interval %}
<p class="interval">Paired bootstrap of the {{ c.interval.metric }} gain ({{ c.name }}):
 <b>{{ '%+.4f' % c.interval.gain }}</b>, {{ '%.0f' % (100 * c.interval.confidence) }}% interval
 [{{ '%+.4f' % c.interval.lower }}, {{ '%+.4f' % c.interval.upper }}] over
 {{ c.interval.resamples }} resamples of the same {{ c.interval.rows }} rows (seed
 {{ c.interval.seed }}); required: {{ c.limit }}.</p>
{% endfor %}
{% else %}<p class="muted">No gate decision (dry run or evaluation only).</p>{% endif %}

<h2>Leaderboard (out-of-time test rows)</h2>
<table><tr><th>model</th><th>version</th><th>role</th><th>validation {{ primary_metric }}</th>
{% for m in metrics %}<th>{{ m }}</th>{% endfor %}</tr>
{% for e in evaluations %}<tr class="{{ 'winner' if e.version == winner else ('champion' if e.role == 'champion' else '') }}">
 <td>{{ e.family }}{% if e.version == winner %} ★{% endif %}</td><td class="l">{{ e.version }}</td>
 <td class="l">{{ e.role }}</td><td>{{ fmt(e.validation_metrics.get(primary_metric)) }}</td>
 {% for m in metrics %}<td>{{ fmt(e.metrics.get(m)) }}</td>{% endfor %}</tr>{% endfor %}
</table>

{% set uncertain = evaluations | selectattr('uncertainty') | list %}{% if uncertain %}
<h2>How sure (test ROC AUC)</h2>
<p class="muted">{{ uncertain[0].uncertainty.method }}.</p>
<table><tr><th>model</th><th>version</th><th>mean roc_auc</th><th>95% interval</th><th>per test cutoff (rows, positives)</th></tr>
{% for e in uncertain %}<tr><td>{{ e.family }}</td><td class="l">{{ e.version }}</td><td>{{ fmt(e.uncertainty.mean) }}</td>
<td>{{ fmt(e.uncertainty.ci95[0]) }} – {{ fmt(e.uncertainty.ci95[1]) }}</td>
<td class="l">{% for c in e.uncertainty.by_cutoff %}{{ c.cutoff[:16] }}: {{ fmt(c.roc_auc) }} ({{ c.rows }}, {{ c.positives }}){% if not loop.last %}; {% endif %}{% endfor %}</td></tr>{% endfor %}
</table>{% endif %}

{% if age_curve and age_curve.points %}<h2>How fast the winner goes stale</h2>
<p class="muted">The winner scored, without refitting, on each cutoff after its last training
 cutoff {{ age_curve.trained_until[:16] }} (age = cutoff − that, in data time; validation
 cutoffs chose the model, so theirs are slightly optimistic). Retraining age: the first age
 whose {{ age_curve.metric }} is below the youngest age's {{ fmt(age_curve.reference) }} minus
 monitoring.live_tolerance = {{ age_curve.tolerance }}, or the last measured age if none is.</p>
<p><b>Recommended retraining age: {{ days(age_curve.retrain_age_seconds) }}</b>
 ({{ 'a drop beyond the tolerance was measured' if age_curve.dropped else 'no drop measured: the last measured age' }});
 labels lag the newest event by {{ days(age_curve.label_lag_seconds) }}, so the monitoring DAG
 alerts (staleness) when the served model is older than
 {{ days(age_curve.max_served_age_seconds) }} unless monitoring.max_model_age says otherwise.
 {% if age_curve.get('served_age_seconds') is not none %}At this run's newest event the model is
 already {{ days(age_curve.served_age_seconds) }} old{% if age_curve.max_served_age_seconds is not none
 and age_curve.served_age_seconds > age_curve.max_served_age_seconds %}: <b class="fail">beyond
 that limit, so the staleness check alerts as soon as it serves</b> (a dip may be noise or
 season: read the intervals, or set monitoring.max_model_age){% endif %}.{% endif %}</p>
<table><tr><th>cutoff</th><th>age</th><th>part</th><th>rows</th><th>positives</th><th>{{ age_curve.metric }}</th>
{% if age_curve.metric != 'roc_auc' %}<th>roc_auc</th>{% endif %}<th>roc_auc 95% interval</th>{% if age_curve.metric != 'pr_auc' %}<th>pr_auc</th>{% endif %}</tr>
{% for p in age_curve.points %}<tr><td>{{ p.cutoff[:16] }}</td><td>{{ days(p.age_seconds) }}</td><td class="l">{{ p.part }}</td>
<td>{{ p.rows }}</td><td>{{ p.positives }}</td><td>{{ fmt(p.metrics.get(age_curve.metric)) }}</td>
{% if age_curve.metric != 'roc_auc' %}<td>{{ fmt(p.metrics.get('roc_auc')) }}</td>{% endif %}
<td>{{ fmt(p.roc_auc_ci95[0] if p.roc_auc_ci95 else none) }} – {{ fmt(p.roc_auc_ci95[1] if p.roc_auc_ci95 else none) }}</td>
{% if age_curve.metric != 'pr_auc' %}<td>{{ fmt(p.metrics.get('pr_auc')) }}</td>{% endif %}</tr>{% endfor %}
</table>{% endif %}

{% if training %}<h2>How each candidate was fitted</h2>
<p class="muted">Training rows: above <code>training.max_rows</code> the train cutoffs keep every positive and a seeded sample of negatives, each weighted 1/keep rate so probabilities stay calibrated; validation and test rows are never sampled.</p>
<table><tr><th>family</th><th>training rows</th><th>trials (budget)</th><th>best trial</th><th>chosen params</th><th>fit</th><th>features</th><th>dropped before training</th></tr>
{% for family, t in training.items() %}<tr><td>{{ family }}</td>
{% set s = t.get('sampling') or {} %}<td class="l">{% if s.get('sampled') %}<b>down-sampled</b>: {{ '{:,}'.format(s.rows_after) }} of {{ '{:,}'.format(s.rows_before) }} (training.max_rows {{ '{:,}'.format(s.max_rows) }}): all {{ '{:,}'.format(s.positives_kept) }} positives, {{ '{:,}'.format(s.negatives_kept) }} of {{ '{:,}'.format(s.negatives_before) }} negatives (keep rate {{ s.negative_keep_rate }}, each weighted {{ s.negative_weight }}){% if not s.bound_met %} <b class="fail">bound not met: positives exceed half of it</b>{% endif %}{% elif s %}all {{ '{:,}'.format(s.rows_before) }} ({{ '{:,}'.format(s.positives) }} positives){% else %}–{% endif %}</td>
<td>{{ t.search.get('trials_run', '–') }} of {{ t.search.get('trials_planned', '–') }}{% if t.search.get('rule') %} ({{ t.search.rule }}){% endif %}{% if t.search.get('time_box_hit') %} <b class="fail">cut by the {{ t.search.time_box_seconds }}s time box</b>{% endif %}</td>
<td>{{ t.search.get('best_trial', '–') }}</td><td class="l"><code>{{ t.params }}</code></td>
<td class="l"><code>{{ t.fit }}</code></td><td>{{ t.features_used if t.features_used is not none else '–' }}</td>
<td class="l">{% for d in t.dropped_features %}{{ d.feature }} ({{ d.reason }}{% if d.get('to') %} of {{ d.to }}{% endif %}{% if d.get('corr') %}, corr {{ d.corr }}{% endif %}){% if not loop.last %}; {% endif %}{% else %}none{% endfor %}</td></tr>{% endfor %}
</table>{% endif %}

<h2>Top features per model</h2>
{% for e in evaluations %}{% if e.importance %}<p><b>{{ e.family }}</b> {{ e.version }}
 <span class="muted">({{ 'mean |SHAP|' if e.importance[0].get('method', 'mean_abs_shap') == 'mean_abs_shap' else 'ROC AUC drop when shuffled' }}{% set x = e.explained or {} %}{% if x %} on {{ '{:,}'.format(x.rows) }} of {{ '{:,}'.format(x.of) }} test rows{% if x.sampled %}: a seeded sample, training.explain_rows = {{ '{:,}'.format(x.max_rows) }}{% else %}: all{% endif %}{% endif %})</span>:
 {% for t in e.importance[:top_features_listed] %}{{ t.feature }} {{ fmt(t.get('importance', t.get('mean_abs_shap'))) }}{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}{% endfor %}

<h2>Plots</h2>
{% for title, png in plots %}<img alt="{{ title }}" title="{{ title }}" src="data:image/png;base64,{{ png }}">{% endfor %}

<h2>Slices</h2>
<p class="muted">Gate 2 guards a slice's ROC AUC (no regression beyond
 gate.guard_tolerances.slice_roc_auc vs the champion; at a first promotion, at least
 gate.min_slice_roc_auc) only when it holds at least gate.min_slice_positives =
 {{ min_slice_positives }} positives and as many negatives: below that the AUC is too noisy
 to block on, so the slice is reported only.</p>
{% for e in evaluations %}{% if e.slices %}
<h3>{{ e.family }} {{ e.version }}</h3>
<table><tr><th>slice</th><th>rows</th><th>positive rate</th><th>roc_auc</th><th>pr_auc</th><th>log_loss</th><th>ece</th><th>lift_top_decile</th><th>gate 2</th></tr>
{% for column, values in e.slices.items() %}{% for value, m in values.items() %}{% set guard = slice_guard(m) %}
<tr><td>{{ column }} = {{ value }}</td><td>{{ m.rows | int }}</td><td>{{ fmt(m.positive_rate) }}</td>
<td>{{ fmt(m.roc_auc) }}</td><td>{{ fmt(m.pr_auc) }}</td><td>{{ fmt(m.log_loss) }}</td><td>{{ fmt(m.get('ece')) }}</td><td>{{ fmt(m.lift_top_decile) }}</td>
<td class="l">{{ 'guarded' if guard[0] else guard[1] }}</td></tr>
{% endfor %}{% endfor %}</table>{% endif %}{% endfor %}

<h2>Why these scores (top predictions of the winner)</h2>
{% if winner_eval and winner_eval.examples %}
<table><tr><th>user (pseudonym)</th><th>P(buy)</th><th>label</th><th>top reasons (SHAP, log-odds)</th></tr>
{% for ex in winner_eval.examples %}<tr><td>{{ ex.get('user_id') or '–' }}</td><td>{{ fmt(ex.probability) }}</td><td>{{ ex.label }}</td>
<td class="l">{% for r in ex.reasons %}{{ r.feature }}={{ fmt(r.value) }} ({{ '%+.3f' % r.contribution }}){% if not loop.last %}; {% endif %}{% endfor %}</td></tr>{% endfor %}
</table>{% else %}<p class="muted">The winner's family has no built-in SHAP contributions.</p>{% endif %}

{% if trials %}<h2>Search</h2>
<table><tr><th>family</th><th>trial</th><th>validation {{ primary_metric }}</th><th>seconds</th><th>calibration</th><th>params</th></tr>
{% for family, rows in trials.items() %}{% for t in rows %}<tr><td>{{ family }}</td><td>{{ t.trial }}</td>
<td>{{ fmt(t.get(primary_metric)) }}</td><td>{{ t.seconds }}</td>
<td class="l">{{ ((t.get('info') or {}).get('calibration') or {}).get('method', '–') }}</td>
<td class="l"><code>{{ t.params }}</code></td></tr>{% endfor %}{% endfor %}
</table>{% endif %}
</body></html>
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    if number != number:  # NaN
        return "–"
    return f"{number:.4f}"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _days(seconds: float | None) -> str:
    """An age in days for people (hours below a day: minute-scale clickstreams)."""
    if seconds is None:
        return "–"
    if abs(seconds) < 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.4g} days"


def _age_plot(curve: dict[str, Any]) -> tuple[str, str] | None:
    """The winner's primary metric (and ROC AUC with its interval) against age."""
    points = curve.get("points") or []
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metric = curve["metric"]
    ages = [p["age_seconds"] / 86400 for p in points]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(ages, [p["metrics"].get(metric, float("nan")) for p in points], marker="o",
            ms=4, label=metric)
    if metric != "roc_auc":
        ax.plot(ages, [p["metrics"].get("roc_auc", float("nan")) for p in points],
                marker=".", ms=3, label="roc_auc")
    lows = [p["metrics"].get("roc_auc", float("nan")) - (p.get("roc_auc_ci95") or [0, 0])[0]
            for p in points]
    highs = [(p.get("roc_auc_ci95") or [0, 0])[1] - p["metrics"].get("roc_auc", float("nan"))
             for p in points]
    ax.errorbar(ages, [p["metrics"].get("roc_auc", float("nan")) for p in points],
                yerr=[lows, highs], fmt="none", ecolor="grey", elinewidth=0.8, capsize=2,
                label="roc_auc 95% interval")
    if curve.get("reference") is not None:
        from shopflow.evaluation.metrics import higher_is_better

        sign = -1 if higher_is_better(metric) else 1
        ax.axhline(curve["reference"] + sign * curve["tolerance"], ls="--", c="#c33", lw=0.8,
                   label="youngest − tolerance" if sign < 0 else "youngest + tolerance")
    if curve.get("retrain_age_seconds") is not None:
        ax.axvline(curve["retrain_age_seconds"] / 86400, ls=":", c="#2a7", lw=1.0,
                   label="recommended retraining age")
    ax.set(title="Metric against model age (held-out cutoffs)",
           xlabel="age: cutoff − last training cutoff (days)", ylabel=metric)
    ax.legend(fontsize=7)
    return ("Metric against model age", _png(fig))


def _plots(evaluations: list[ModelEvaluation], winner: str | None) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    def label(e: ModelEvaluation) -> str:
        tag = " (champion)" if e.role == "champion" else (" ★" if e.version == winner else "")
        return f"{e.family}{tag}"

    plots: list[tuple[str, str]] = []
    fig, ax = plt.subplots(figsize=(5, 4))
    for e in evaluations:
        if "roc" in e.curves:
            ax.plot(e.curves["roc"]["fpr"], e.curves["roc"]["tpr"],
                    label=f"{label(e)} {_fmt(e.metrics.get('roc_auc'))}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(fontsize=7)
    plots.append(("ROC curves", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 4))
    for e in evaluations:
        if "pr" in e.curves:
            ax.plot(e.curves["pr"]["recall"], e.curves["pr"]["precision"],
                    label=f"{label(e)} {_fmt(e.metrics.get('pr_auc'))}")
    ax.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    ax.legend(fontsize=7)
    plots.append(("Precision-recall curves", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 4))
    for e in evaluations:
        points = [(b["mean_predicted"], b["observed_rate"]) for b in e.calibration if b["count"]]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", ms=3, label=f"{label(e)} ECE {_fmt(e.metrics.get('ece'))}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(title="Calibration (reliability)", xlabel="mean predicted", ylabel="observed rate")
    ax.legend(fontsize=7)
    plots.append(("Calibration", _png(fig)))

    chosen = next((e for e in evaluations if e.version == winner and e.importance), None)
    chosen = chosen or next((e for e in evaluations if e.importance), None)
    if chosen is not None:
        top = chosen.importance[:15][::-1]
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.barh([t["feature"] for t in top],
                [t.get("importance", t.get("mean_abs_shap", 0.0)) for t in top])
        method = ("mean |SHAP|" if top and top[0].get("method", "mean_abs_shap") == "mean_abs_shap"
                  else "ROC AUC drop when shuffled")
        ax.set(title=f"Importance: {chosen.family} ({method})", xlabel=method)
        ax.tick_params(axis="y", labelsize=7)
        plots.append(("Feature importance", _png(fig)))
    return plots


def write_report(
    settings: Settings,
    run_id: str,
    evaluations: list[ModelEvaluation],
    *,
    winner: str | None,
    decision: GateDecision | None = None,
    split: dict[str, Any] | None = None,
    trials: dict[str, list[dict[str, Any]]] | None = None,
    training: dict[str, dict[str, Any]] | None = None,
    age_curve: dict[str, Any] | None = None,
) -> Path:
    """Render the run's report; returns its path.

    ``age_curve`` is the winner's :class:`~shopflow.evaluation.aging.AgeCurve` as a dict.
    """
    import jinja2

    from shopflow.evaluation.gate import slice_guard

    safe_run = "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in run_id)
    path = settings.reports_dir / "runs" / safe_run / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    template = env.from_string(_TEMPLATE)
    text = template.render(
        run_id=run_id,
        written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        primary_metric=settings.gate.primary_metric,
        threshold=settings.training.threshold,
        split=split,
        decision=decision,
        evaluations=evaluations,
        winner=winner,
        winner_eval=next((e for e in evaluations if e.version == winner), None),
        metrics=LEADERBOARD_METRICS,
        top_features_listed=TOP_FEATURES_LISTED,
        plots=[*_plots(evaluations, winner),
               *([aged] if (aged := _age_plot(age_curve or {})) is not None else [])],
        age_curve=age_curve or {},
        days=_days,
        trials=trials or {},
        training=training or {},
        fmt=_fmt,
        min_slice_positives=settings.gate.min_slice_positives,
        slice_guard=lambda m: slice_guard(m, settings.gate.min_slice_positives),
    )
    atomic.write_text(path, text)
    logger.info("run report written to %s", path)
    return path
