"""Shopflow's param tables as Airflow ``Param`` objects for a DAG's trigger form."""

from __future__ import annotations

from airflow.sdk import Param

from shopflow.pipeline.params import specs_for


def dag_params(dag_id: str) -> dict[str, Param]:
    """The typed, titled, described ``Param``s of one Shopflow DAG."""
    return {name: Param(**spec.as_param_kwargs()) for name, spec in specs_for(dag_id).items()}
