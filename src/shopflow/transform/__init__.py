"""The dbt warehouse: build staging, intermediate and marts, and publish the marts.

``run_dbt`` drives the project in ``dbt_project/`` in process (dbt's ``dbtRunner``) with
the run's settings; ``publish_marts`` writes the marts as Parquet snapshots for Feast once
the marts gate has passed. Importing this package is cheap: dbt is imported on first use.
"""

from __future__ import annotations

from shopflow.transform.dbt_runner import (
    DbtError,
    DbtRunResult,
    DbtTestFailed,
    NodeResult,
    dbt_args,
    dbt_env,
    dbt_project_dir,
    dbt_vars,
    run_dbt,
)
from shopflow.transform.publish import (
    MART_TABLES,
    PublishError,
    marts_dir,
    publish_marts,
    read_mart,
)

__all__ = [
    "MART_TABLES",
    "DbtError",
    "DbtRunResult",
    "DbtTestFailed",
    "NodeResult",
    "PublishError",
    "dbt_args",
    "dbt_env",
    "dbt_project_dir",
    "dbt_vars",
    "marts_dir",
    "publish_marts",
    "read_mart",
    "run_dbt",
]
