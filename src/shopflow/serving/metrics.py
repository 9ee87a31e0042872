"""The service's own ``GET /metrics``: Prometheus text, at a per-request cost of a few µs.

BentoML's metrics are off (``shopflow.serving.options``: its middleware costs more than a
small request). These are plain counters and fixed-bucket histograms in dicts, rendered
in the Prometheus text format on scrape. No locks: every update and every scrape happens
on the worker's event-loop thread (the front-door middleware times requests; the
handlers record scores after their scoring call returned to the loop), and the service
runs one worker. Series are created on first use, with bounded labels (known routes,
else ``other``; status codes; served model versions).

Families (``shopflow_`` prefix): ``http_requests_total`` and
``http_request_duration_seconds`` (histogram) by ``endpoint`` and ``status``;
``predictions_total`` by ``endpoint``, ``model_version`` and ``known_user`` (cold-start
share = ``known_user="false"`` / all); ``prediction_score`` (histogram of served
probabilities) by ``model_version``; ``model_info`` (the versions being served),
``model_swaps_total``, ``model_refusals_total`` by ``model``; ``prediction_log_*`` and
``shadow_*`` counters (written, dropped, failed, pending).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))


class Histogram:
    """Counts per bucket (non-cumulative until rendered), sum and count."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        """One observation (``le`` is inclusive: ``bisect_left``)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def lines(self, name: str, labels: str) -> Iterable[str]:
        """``_bucket``, ``_sum`` and ``_count`` lines; ``labels`` is ``k="v",...`` or ''."""
        sep = "," if labels else ""
        cumulative = 0
        for bound, n in zip((*self.bounds, "+Inf"), self.counts, strict=True):
            cumulative += n
            yield f'{name}_bucket{{{labels}{sep}le="{bound}"}} {cumulative}'
        yield f"{name}_sum{{{labels}}} {self.total!r}"
        yield f"{name}_count{{{labels}}} {cumulative}"


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def family(name: str, kind: str, doc: str) -> list[str]:
    """The ``# HELP`` / ``# TYPE`` header of one metric family."""
    return [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]


class RequestMetrics:
    """Requests and their latency per endpoint and status (fed by the front door).

    Args:
        endpoints: paths that get their own label; any other path is ``other``.
    """

    def __init__(self, endpoints: Iterable[str]) -> None:
        self._endpoints = frozenset(endpoints)
        self._series: dict[tuple[str, int], Histogram] = {}

    def observe(self, path: str, status: int, seconds: float) -> None:
        """One answered request."""
        key = (path if path in self._endpoints else "other", status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Histogram(LATENCY_BUCKETS)
        series.observe(seconds)

    def lines(self) -> list[str]:
        """The request families in Prometheus text format."""
        items = sorted(self._series.items())
        out = family("shopflow_http_requests_total", "counter",
                     "Requests answered, by endpoint and status.")
        out += [f'shopflow_http_requests_total{{endpoint="{e}",status="{s}"}} {h.count}'
                for (e, s), h in items]
        out += family("shopflow_http_request_duration_seconds", "histogram",
                      "Time from the request reaching the service to its answer.")
        for (endpoint, status), series in items:
            out.extend(series.lines("shopflow_http_request_duration_seconds",
                                    f'endpoint="{endpoint}",status="{status}"'))
        return out


class PredictionMetrics:
    """What was served: rows per endpoint, version and known/cold start; score histogram."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, bool], int] = {}
        self._scores: dict[str, Histogram] = {}

    def observe_predict(self, model_version: str, scores: Sequence[float],
                        known: Sequence[bool]) -> None:
        """One ``/predict`` answer (lists, as already made for the response body)."""
        n_known = sum(known)
        rows = self._rows
        if n_known:
            key = ("/predict", model_version, True)
            rows[key] = rows.get(key, 0) + n_known
        if n_known < len(known):
            key = ("/predict", model_version, False)
            rows[key] = rows.get(key, 0) + len(known) - n_known
        histogram = self._scores.get(model_version)
        if histogram is None:
            histogram = self._scores[model_version] = Histogram(SCORE_BUCKETS)
        for score in scores:
            histogram.observe(score)

    def observe_recommend(self, model_version: str, cold_start: bool) -> None:
        """One ``/recommend`` answer."""
        key = ("/recommend", model_version, not cold_start)
        self._rows[key] = self._rows.get(key, 0) + 1

    def lines(self) -> list[str]:
        """The prediction families in Prometheus text format."""
        out = family("shopflow_predictions_total", "counter",
                     "Users answered, by endpoint, model version and known_user "
                     "(false: cold start).")
        out += [f'shopflow_predictions_total{{endpoint="{e}",model_version="{_label(v)}",'
                f'known_user="{str(k).lower()}"}} {n}'
                for (e, v, k), n in sorted(self._rows.items())]
        out += family("shopflow_prediction_score", "histogram",
                      "Purchase probabilities served by /predict, by model version.")
        for version, histogram in sorted(self._scores.items()):
            out.extend(histogram.lines("shopflow_prediction_score",
                                       f'model_version="{_label(version)}"'))
        return out


def model_lines(models: Iterable[tuple[str, str | None, int, int]]) -> list[str]:
    """Served versions, swaps and refusals of ``(model, version, swaps, refusals)``."""
    models = list(models)
    out = family("shopflow_model_info", "gauge", "The model version being served (value 1).")
    out += [f'shopflow_model_info{{model="{m}",version="{_label(v)}"}} 1'
            for m, v, _, _ in models if v is not None]
    out += family("shopflow_model_swaps_total", "counter", "Hot swaps to a new version.")
    out += [f'shopflow_model_swaps_total{{model="{m}"}} {s}' for m, _, s, _ in models]
    out += family("shopflow_model_refusals_total", "counter",
                  "Versions the service refused to serve (failed their swap check).")
    out += [f'shopflow_model_refusals_total{{model="{m}"}} {r}' for m, _, _, r in models]
    return out


def counter_lines(name: str, doc: str, values: dict[str, int], *, kind: str = "counter",
                  label: str = "outcome") -> list[str]:
    """One family with one series per ``values`` key (e.g. written / dropped / failed)."""
    return family(name, kind, doc) + [f'{name}{{{label}="{k}"}} {v}' for k, v in values.items()]


def render(sections: Iterable[Iterable[str]]) -> bytes:
    """The scrape body: every section's lines, newline-terminated."""
    return ("\n".join(line for section in sections for line in section) + "\n").encode()
