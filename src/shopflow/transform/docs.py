"""dbt's documentation site for the warehouse, written where the Shopflow view serves it.

``dbt docs generate --static`` writes one self-contained page (the manifest and the
catalog inlined, no script or font from another host), so the page works offline and is
served as a single file by the Airflow plugin (``/shopflow/dbt-docs/``). The training
DAG's marts stage writes it after each build, when the catalog matches the marts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopflow.transform.dbt_runner import DbtError, run_dbt

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

DOCS_PAGE = "static_index.html"


def docs_dir(settings: Settings) -> Path:
    """dbt's target folder (``SHOPFLOW_HOME/dbt/target``, as :func:`dbt_args` sets it)."""
    return settings.home_dir / "dbt" / "target"


def generate_docs(settings: Settings) -> Path:
    """``dbt docs generate --static`` on the built warehouse; returns the page.

    Raises:
        DbtError: dbt failed, or wrote no page.
    """
    run_dbt(settings, command="docs generate --static")
    page = docs_dir(settings) / DOCS_PAGE
    if not page.is_file():
        raise DbtError(f"dbt docs generate wrote no {page}")
    return page
