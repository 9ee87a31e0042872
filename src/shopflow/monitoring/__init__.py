"""Monitoring: drift (PSI against the training reference), gate 4 (live performance),
training/serving skew and A/B tests.

* :mod:`shopflow.monitoring.drift` — population stability index of features and scores;
* :mod:`shopflow.monitoring.reference` — the training reference kept per model version;
* :mod:`shopflow.monitoring.live` — gate 4: production vs previous model on labels that
  matured since production was deployed, with automatic rollback (the backtest);
* :mod:`shopflow.monitoring.outcomes` — the prediction log's live rows joined with the
  labels that matured since (``served_outcomes``);
* :mod:`shopflow.monitoring.served_gate` — gate 4 on what was served: each served version
  on its own traffic, with automatic rollback;
* :mod:`shopflow.monitoring.skew` — served features and scores against Feast's
  point-in-time offline features and the model's offline score.
* :mod:`shopflow.monitoring.experiment` — A/B test readouts (per-arm outcomes with
  intervals, the promote / stop / continue rule, the ledger record) and the shadow readout.

The monitoring DAG's stages that call them are :mod:`shopflow.pipeline.monitoring_stages`.
"""

from __future__ import annotations
