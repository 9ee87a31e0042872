"""One real ``airflow api-server`` on loopback, started the way ``make airflow`` starts it.

Tests that need Airflow's REST API or UI but no scheduler (the API, the Shopflow view)
start the stack's api-server alone: the same environment as :class:`AirflowStack` (auth
manager, generated login, plugins folder), the DAGs serialized with ``airflow dags
reserialize`` instead of a dag-processor. Always stopped, even when the test fails.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from shopflow.orchestration.stack import AirflowStack
from shopflow.serving.process import free_port
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

START_TIMEOUT = 180.0


@contextmanager
def api_server(home: Path, **settings: Any) -> Iterator[AirflowStack]:
    """A started api-server on a fresh SQLite metadata DB in ``home`` (settings overrides)."""
    stack = AirflowStack(load_settings(home=home, **settings), port=free_port(),
                         with_service=False, inherit_shopflow_env=False,
                         components=("api-server",))
    stack.start(timeout=START_TIMEOUT, reserialize=True)
    try:
        yield stack
    finally:
        stack.stop()
