"""The Great Expectations context of a gate run.

An *ephemeral* context (suites, validation definitions and checkpoints live in memory and
come from ``expectations/`` on every run, so code is the only source of truth), except
for validation results, which go to ``SHOPFLOW_HOME/gx/validations`` so the Data Docs
index under ``reports/data_docs`` lists every past run, not just the latest. Creating
it takes milliseconds; importing GX (~5 s) is the real cost and is paid once per process.
Progress bars are off: gates run in Airflow logs and in the CLI.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

DATA_DOCS_SITE = "shopflow"
_NOISY_LOGGERS = ("great_expectations", "great_expectations.core", "posthog", "urllib3")


def quiet_gx_logging(level: int = logging.WARNING) -> None:
    """Keep GX's info chatter out of CLI output and task logs."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)


def data_docs_dir(settings: Settings) -> Path:
    """``reports/data_docs`` (the site's root; ``index.html`` is its entry page)."""
    return settings.reports_dir / "data_docs"


def gx_dir(settings: Settings) -> Path:
    """``SHOPFLOW_HOME/gx``: GX state that outlives a run (validation results)."""
    return settings.home_dir / "gx"


def build_context(settings: Settings) -> Any:
    """A fresh ephemeral GX context wired to this run's folders."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    quiet_gx_logging()
    defaults = InMemoryStoreBackendDefaults()
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(gx_dir(settings) / "validations"),
        },
    }
    config = DataContextConfig(
        stores=stores,
        expectations_store_name=defaults.expectations_store_name,
        validation_results_store_name=defaults.validation_results_store_name,
        checkpoint_store_name=defaults.checkpoint_store_name,
        data_docs_sites={
            DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(data_docs_dir(settings)),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)

