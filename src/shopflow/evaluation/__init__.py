"""Evaluation: metrics on out-of-time rows, slices, calibration, SHAP, report, gate 2.

* :func:`shopflow.evaluation.evaluate.evaluate_model` — one model on held-out rows;
* :func:`shopflow.evaluation.gate.gate_decision` — challenger vs champion (docs/DESIGN.md §6);
* :func:`shopflow.evaluation.report.write_report` — the run's HTML report.
"""

from __future__ import annotations
