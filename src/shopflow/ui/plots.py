"""Server-drawn SVG plots for the Shopflow view (matplotlib, no browser script, no CDN).

Each function takes the plain data :mod:`shopflow.ui.data` builds and returns an SVG
document as text. Figures are made with :class:`matplotlib.figure.Figure` directly (never
``pyplot``), so drawing keeps no global state in the api-server process.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KIND_COLOURS = {"promotion": "#2b7a3d", "deployment": "#1f5fa8", "rollback": "#b8342a"}


def _svg(figure: Figure) -> str:
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return out.getvalue()


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def _empty(axes: Any, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", transform=axes.transAxes,
              color="#666666")
    axes.set_xticks([])
    axes.set_yticks([])


def metric_over_time(history: dict[str, Any], *, model: str) -> str:
    """The production model's headline metric, one step per production move."""
    figure = _figure(8, 3)
    axes = figure.add_subplot()
    points = history["points"]
    if not points:
        _empty(axes, f"no production {model} model with {history['metric']} yet")
        return _svg(figure)
    times = [p["at"] for p in points]
    values = [p["value"] for p in points]
    axes.step(times, values, where="post", color="#444444", linewidth=1.2)
    for point in points:
        axes.scatter([point["at"]], [point["value"]], zorder=3, s=36,
                     color=KIND_COLOURS.get(point["kind"], "#444444"))
        axes.annotate(str(point["version"])[-18:], (point["at"], point["value"]),
                      textcoords="offset points", xytext=(4, 6), fontsize=7)
    axes.set_ylabel(history["metric"])
    axes.set_title(f"{model}: {history['metric']} of the production model "
                   "(green promotion, blue deployment, red rollback)", fontsize=9)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return _svg(figure)


def roc_and_calibration(curves: list[dict[str, Any]]) -> str:
    """ROC curves and the reliability diagram of every model a run evaluated."""
    figure = _figure(10, 4.2)
    roc, calibration = figure.subplots(1, 2)
    for curve in curves:
        label = f"{curve['family']} {curve['version'] or ''}"[-40:]
        if curve.get("roc"):
            auc = curve.get("roc_auc")
            tag = f" (AUC {auc:.3f})" if isinstance(auc, int | float) else ""
            roc.plot(curve["roc"]["fpr"], curve["roc"]["tpr"], label=label + tag)
        bins = [b for b in curve.get("calibration") or []
                if b.get("mean_predicted") is not None and b.get("observed_rate") is not None]
        if bins:
            calibration.plot([b["mean_predicted"] for b in bins],
                             [b["observed_rate"] for b in bins], marker="o", label=label)
    for axes, title, xlabel, ylabel in (
            (roc, "ROC (test rows)", "false positive rate", "true positive rate"),
            (calibration, "calibration (test rows)", "mean predicted", "observed rate")):
        axes.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=0.8)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7, loc="lower right")
    return _svg(figure)


def psi_bars(drift: dict[str, Any] | None, *, top: int = 30) -> str:
    """PSI per feature, worst first, with the drift threshold."""
    psi = (drift or {}).get("psi") or {}
    rows = sorted(psi.items(), key=lambda kv: -kv[1])[:top]
    figure = _figure(8, max(2.0, 0.22 * len(rows) + 1.0))
    axes = figure.add_subplot()
    if not rows:
        _empty(axes, "no feature drift recorded yet")
        return _svg(figure)
    threshold = (drift or {}).get("threshold")
    names = [name for name, _ in rows][::-1]
    values = [value for _, value in rows][::-1]
    colours = ["#b8342a" if isinstance(threshold, int | float) and v > threshold else "#1f5fa8"
               for v in values]
    axes.barh(names, values, color=colours)
    if isinstance(threshold, int | float):
        axes.axvline(threshold, color="#b8342a", linestyle="--", linewidth=1,
                     label=f"threshold {threshold}")
        axes.legend(fontsize=7, loc="lower right")
    axes.set_xlabel("PSI (serving vs training reference)")
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(f"feature drift of {(drift or {}).get('version')}", fontsize=9)
    return _svg(figure)
