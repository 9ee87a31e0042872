"""Airflow helpers shared by Shopflow's DAG files: assets, defaults, callbacks.

Kept apart from :mod:`shopflow.pipeline` (which imports no Airflow) so the stage
functions run without Airflow installed, and DAG files import only what they need.
"""
