"""The Shopflow view inside the Airflow UI: models, runs, monitoring, plots, rollback.

An Airflow 3 plugin (:mod:`shopflow.ui.plugin`) mounts :func:`shopflow.ui.app.create_app`
on the api-server under ``/shopflow`` and adds menu entries and DAG-run/task tabs, so a
person sees the ledger, each run's reports and the monitoring readouts where they already
look, logged in by Airflow's own auth manager. :mod:`shopflow.ui.data` reads (ledger,
run records, report files) and :mod:`shopflow.ui.plots` draws; neither imports Airflow.
"""
