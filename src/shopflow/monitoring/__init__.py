"""Monitoring: drift (PSI against the training reference) and gate 4 (live performance).

* :mod:`shopflow.monitoring.drift` — population stability index of features and scores;
* :mod:`shopflow.monitoring.reference` — the training reference kept per model version;
* :mod:`shopflow.monitoring.live` — gate 4: production vs previous model on labels that
  matured since production was deployed, with automatic rollback;
* :mod:`shopflow.monitoring.stages` — the monitoring DAG's stage functions.
"""

from __future__ import annotations
