"""Monitoring: drift (PSI against the training reference) and gate 4 (live performance).

* :mod:`shopflow.monitoring.drift` — population stability index of features and scores;
* :mod:`shopflow.monitoring.reference` — the training reference kept per model version;
* :mod:`shopflow.monitoring.live` — gate 4: production vs previous model on labels that
  matured since production was deployed, with automatic rollback.

The monitoring DAG's stages that call them are :mod:`shopflow.pipeline.monitoring_stages`.
"""

from __future__ import annotations
