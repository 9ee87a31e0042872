"""DuckDB opened under the run's memory limit, thread count and spill folder.

Every connection Shopflow opens (the warehouse, mart reads, Feast exports) goes through
shopflow.duckdb_connect, and dbt's profile receives the same values; these tests ask a
real DuckDB what it was given.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from shopflow.duckdb_connect import (
    connect_duckdb,
    duckdb_settings,
    physical_memory_bytes,
    usable_cpus,
)
from shopflow.settings import ConfigError, Settings, load_settings
from shopflow.transform import dbt_env
from shopflow.warehouse import connect

if TYPE_CHECKING:
    from pathlib import Path

_CURRENT = (
    "select current_setting('memory_limit'), current_setting('threads'), "
    "current_setting('temp_directory')"
)


def _configured(home: Path) -> Settings:
    return load_settings(
        warehouse={"memory_limit": "1GiB", "threads": 3, "temp_directory": str(home / "spill")}
    )


def test_a_connection_reports_the_configured_settings(shopflow_home: Path) -> None:
    settings = _configured(shopflow_home)
    with connect_duckdb(settings, shopflow_home / "x.duckdb") as conn:
        assert conn.execute(_CURRENT).fetchone() == ("1.0 GiB", 3, str(shopflow_home / "spill"))
    # the spill folder exists before DuckDB first needs it
    assert (shopflow_home / "spill").is_dir()


def test_the_warehouse_opens_under_the_same_settings(shopflow_home: Path) -> None:
    settings = _configured(shopflow_home)
    with connect(settings) as warehouse:
        row = warehouse.query_df(_CURRENT).iloc[0].tolist()
    assert row == ["1.0 GiB", 3, str(shopflow_home / "spill")]


def test_defaults_derive_from_the_machine(shopflow_home: Path) -> None:
    settings = load_settings()
    values = duckdb_settings(settings)
    total = physical_memory_bytes()
    assert total is not None  # Linux and macOS say; the CI runs on Linux
    assert values["memory_limit"] == f"{total // 2 // 2**20}MiB"
    assert values["threads"] == str(usable_cpus())
    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)
    assert values["temp_directory"] == str(settings.home_dir / "tmp" / "duckdb")
    with connect_duckdb(settings) as conn:
        memory, threads, temp = conn.execute(_CURRENT).fetchone()
    assert threads == usable_cpus()
    assert temp == str(settings.home_dir / "tmp" / "duckdb")
    # DuckDB reports e.g. "11.7 GiB": half the machine, up to its one-decimal rounding
    number, unit = memory.split()
    reported = float(number) * 2 ** {"MiB": 20, "GiB": 30, "TiB": 40}[unit]
    assert reported == pytest.approx(total / 2, rel=0.01)


def test_environment_overrides_reach_the_connection(
    shopflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__MEMORY_LIMIT", "512MiB")
    monkeypatch.setenv("SHOPFLOW_WAREHOUSE__THREADS", "1")
    settings = load_settings()
    with connect_duckdb(settings) as conn:
        memory, threads, _ = conn.execute(_CURRENT).fetchone()
    assert (memory, threads) == ("512.0 MiB", 1)


@pytest.mark.parametrize(
    ("warehouse", "key"),
    [
        ({"memory_limit": "lots"}, "warehouse.memory_limit"),
        ({"memory_limit": "4"}, "warehouse.memory_limit"),
        ({"threads": 0}, "warehouse.threads"),
    ],
)
def test_bad_values_name_their_key(
    shopflow_home: Path, warehouse: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError, match=key):
        load_settings(warehouse=warehouse)


def test_dbt_profile_env_carries_the_same_values(shopflow_home: Path) -> None:
    settings = _configured(shopflow_home)
    env = dbt_env(settings)
    assert env["DBT_SHOPFLOW_DUCKDB_MEMORY_LIMIT"] == "1GiB"
    assert env["DBT_SHOPFLOW_DUCKDB_THREADS"] == "3"
    # dbt's model concurrency stays its own knob
    assert env["DBT_SHOPFLOW_THREADS"] == str(min(4, os.cpu_count() or 1))



def test_a_second_connection_after_a_spill_opens(shopflow_home: Path) -> None:
    """DuckDB refuses to SET temp_directory again once it spilled; the helper does not."""
    settings = load_settings(warehouse={"memory_limit": "64MiB", "threads": 1})
    path = shopflow_home / "spill.duckdb"
    with connect_duckdb(settings, path) as first:
        first.execute("create table t as select range as i, hash(range) as h from range(3000000)")
        first.execute("select i from t order by h").fetchall()
        spilled = list(settings.duckdb_temp_dir.iterdir())
        with connect_duckdb(settings, path) as second:
            assert second.execute("select count(*) from t").fetchone() == (3_000_000,)
            assert second.execute(_CURRENT).fetchone()[2] == str(settings.duckdb_temp_dir)
    assert spilled, "the sort under 64MiB should have spilled"
