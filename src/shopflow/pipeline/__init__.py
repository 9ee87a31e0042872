"""The pipeline: what Shopflow's Airflow tasks do, and running a DAG in process.

* :mod:`shopflow.pipeline.params` — each DAG's params (trigger form, CLI ``--param``);
* :mod:`shopflow.pipeline.vocabulary` — what stages share: context, results, outcomes,
  records (the leaf of the stage layer);
* :mod:`shopflow.pipeline.stages` — the registry: stage name -> function, for every DAG;
* :mod:`shopflow.pipeline.data_stages`, :mod:`~shopflow.pipeline.model_stages`,
  :mod:`~shopflow.pipeline.recommend_stages`, :mod:`~shopflow.pipeline.monitoring_stages`
  — the stage functions ``(settings, context, **inputs) -> dict`` the DAG tasks call;
* :mod:`shopflow.pipeline.tasks` — :func:`run_stage`, the one door from a task into them;
* :mod:`shopflow.pipeline.runs` — per-run stage records in ``reports_dir/runs``;
* :mod:`shopflow.pipeline.runner` — :func:`run_dag`, ``dag.test()`` behind
  ``shopflow pipeline run``; :mod:`shopflow.pipeline.summary` — its printed summary.

Nothing here imports Airflow at import time (only :mod:`runner` does, when it runs).
"""

from __future__ import annotations
