"""Model-call benchmark: each family's library predictor beside its compiled one.

A one-user ``/predict`` makes one model call on one row; its cost is mostly the library's
fixed cost per call, which the compiled predictors (``shopflow.training.compiled``) avoid.
Per family, a real model is trained on the synthetic frame (quick search), compiled and
checked and timed as registration does (the last column: up to which batch size the
service uses the compiled predictor; above it the library's is faster); then the
calibrated ``predict`` of both is timed on 1 and 100 rows of the model's own test rows (median of repeated calls, after a warm-up). The
floor, measured in the same run: a bare numpy dot product of the same matrix with one
weight vector (no model can cost less than reading its row once).

Results: a Markdown table and ``SHOPFLOW_HOME/bench/inference.json``.

Run: ``python -m benchmarks.bench_inference [--repeats 2000] [--families ...]``.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import print_table, write_json

FAMILIES = ("baseline", "xgboost", "lightgbm", "torch")
SIZES = (1, 100)


def median_us(call: Any, rows: np.ndarray, repeats: int) -> float:
    """Median microseconds of ``call(rows)`` over ``repeats`` calls, after a warm-up."""
    for _ in range(max(10, repeats // 20)):
        call(rows)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(rows)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def bench_family(family: str, frame: Any, repeats: int) -> dict[str, Any]:
    """Train, compile and time one family."""
    from shopflow.settings import load_settings
    from shopflow.training.compiled import compile_checked
    from shopflow.training.pipeline import train_family
    from shopflow.training.split import split_by_cutoff

    quick = load_settings(training={"search_trials": 1})
    model = train_family(quick, family, frame, "bench-inference", dry_run=True).model
    assert model is not None
    test = model.matrix(frame.iloc[split_by_cutoff(frame).test])
    compilation = compile_checked(model, test)  # as registration: checked, then timed
    result: dict[str, Any] = {"family": family, "facts": compilation.facts, "sizes": []}
    weights = np.random.default_rng(0).normal(size=test.shape[1])
    for size in SIZES:
        rows = np.ascontiguousarray(test[np.arange(size) % len(test)])
        cell = {
            "rows": size,
            "library_us": median_us(model.predictor.predict, rows, repeats),
            "compiled_us": None if compilation.predictor is None else
            median_us(compilation.predictor.predict, rows, repeats),
            "floor_us": median_us(lambda r: r @ weights, rows, repeats),
        }
        result["sizes"].append(cell)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000, help="timed calls per cell")
    parser.add_argument("--rows", type=int, default=6000, help="synthetic training rows")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from shopflow.settings import load_settings
    from shopflow.training.synthetic import synthetic_training_frame

    frame = synthetic_training_frame(rows=args.rows, cutoffs=5, seed=7)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    results = [bench_family(family, frame, args.repeats) for family in args.families]
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    table = []
    for r in results:
        facts = r["facts"]
        for cell in r["sizes"]:
            compiled = cell["compiled_us"]
            table.append([
                r["family"], cell["rows"], round(cell["library_us"], 1),
                "-" if compiled is None else round(compiled, 1),
                "-" if compiled is None else f"{cell['library_us'] / compiled:.1f}x",
                round(cell["floor_us"], 2), facts.get("method", facts.get("reason", "")),
                f"{facts['max_abs_diff']:.1e}" if "max_abs_diff" in facts else "-",
                facts.get("max_rows", "-") if compiled is not None else "-",
            ])
    print_table("Model call, median microseconds (calibrated predict)",
                ["family", "rows", "library µs", "compiled µs", "speed-up", "floor µs (numpy dot)",
                 "compiled as", "max |diff| on checked rows", "compiled serves ≤ rows"],
                table)
    print(f"load average before {load_before}, after {load_after}")
    path = write_json(load_settings().home_dir / "bench", "inference",
                      {"args": vars(args), "load_average": {"before": load_before,
                                                            "after": load_after},
                       "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
