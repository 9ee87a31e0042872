"""Fixtures shared by every test tier.

Every test gets its own SHOPFLOW_HOME, so tests never see each other's warehouse, Feast
registry, model store or ledger. PostgreSQL and Redis are the real local servers: in CI
(``CI=true``) a missing server fails the run; on a user's machine the test is skipped
with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pandas as pd

    from shopflow.training.model import PropensityModel

POSTGRES_URL = os.environ.get("SHOPFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
ONLINE_RETAIL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Fail in CI, skip elsewhere, when a real server the test needs is not running."""
    if _port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if _in_ci():
        pytest.fail(f"{message} (CI=true: integration services must run)")
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture(autouse=True)
def shopflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private SHOPFLOW_HOME per test; env vars from the caller's shell are ignored."""
    for key in list(os.environ):
        if key.startswith("SHOPFLOW_") and key != "SHOPFLOW_TEST_POSTGRES_URL":
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "shopflow_home"
    monkeypatch.setenv("SHOPFLOW_HOME", str(home))
    return home


@pytest.fixture
def settings(shopflow_home: Path) -> Settings:
    """Default settings anchored to the test's SHOPFLOW_HOME, folders created."""
    loaded = load_settings()
    loaded.ensure_dirs()
    return loaded


@pytest.fixture
def postgres_url() -> str:
    """The local PostgreSQL server (db ``test``); fails in CI if it is down."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def postgres_schema_prefix(postgres_url: str) -> Iterator[str]:
    """A unique schema prefix in the shared ``test`` database, dropped afterwards."""
    import sqlalchemy as sa

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield prefix
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        schemas = conn.execute(
            sa.text("select schema_name from information_schema.schemata where schema_name like :p"),
            {"p": f"{prefix}%"},
        ).scalars()
        for schema in list(schemas):
            conn.execute(sa.text(f'drop schema if exists "{schema}" cascade'))
    engine.dispose()


@pytest.fixture
def redis_url() -> str:
    """The local Redis server; fails in CI if it is down."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"{REDIS_HOST}:{REDIS_PORT}"


@pytest.fixture
def online_retail_path() -> Path:
    """The shared UCI Online Retail export (real mess included)."""
    if not ONLINE_RETAIL.is_file():
        if _in_ci():
            pytest.fail(f"shared dataset missing at {ONLINE_RETAIL}")
        pytest.skip(f"shared dataset not found at {ONLINE_RETAIL}")
    return ONLINE_RETAIL


@pytest.fixture(scope="session")
def quick_model() -> Callable[[pd.DataFrame, str], PropensityModel]:
    """``(frame, family) -> model``: a real model trained on ``frame`` with one search
    trial (no registry), once per frame and family for the whole session (several
    modules compare the families of one frame; training them is the slow part)."""
    import pandas as pd

    from shopflow.training.pipeline import train_family

    trained: dict[tuple[int, str], PropensityModel] = {}

    def get(frame: pd.DataFrame, family: str) -> PropensityModel:
        key = (int(pd.util.hash_pandas_object(frame).sum()), family)
        if key not in trained:
            quick = load_settings(training={"search_trials": 1})
            result = train_family(quick, family, frame, "quick", dry_run=True)
            assert result.model is not None, result
            trained[key] = result.model
        return trained[key]

    return get
