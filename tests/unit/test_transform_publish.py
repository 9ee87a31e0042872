"""publish_marts / read_mart on a real DuckDB file with hand-made mart tables (no dbt)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shopflow.transform import MART_TABLES, PublishError, marts_dir, publish_marts, read_mart

if TYPE_CHECKING:
    from shopflow.settings import Settings


def _make_marts(settings: Settings, *, skip: str | None = None) -> None:
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("create schema if not exists marts")
        for table in MART_TABLES:
            conn.execute(f"drop table if exists marts.{table}")
        if skip != "user_features":
            conn.execute(
                "create table marts.user_features as select * from (values "
                "('u2', timestamp '2024-01-04', 1.0), ('u1', timestamp '2024-01-06', 2.0), "
                "('u1', timestamp '2024-01-04', 3.0)) as t(user_id, cutoff_time, events_lookback)"
            )
        if skip != "item_features":
            conn.execute(
                "create table marts.item_features as select 'i1' as item_id, "
                "timestamp '2024-01-04' as cutoff_time, cast(1 as integer) as item_popularity_rank"
            )
        if skip != "user_features_v1":
            conn.execute(
                "create table marts.user_features_v1 as select 'u1' as user_id, "
                "timestamp '2024-01-04' as cutoff_time, 3.0 as events_lookback"
            )
        if skip != "purchase_labels":
            conn.execute(
                "create table marts.purchase_labels as select 'u1' as user_id, "
                "timestamp '2024-01-04' as cutoff_time, cast(1 as integer) as label, "
                "timestamp '2024-02-03' as label_window_end"
            )


def test_publish_writes_each_mart_sorted_with_stable_types(settings: Settings) -> None:
    _make_marts(settings)
    published = publish_marts(settings)

    assert published == {name: marts_dir(settings) / f"{name}.parquet" for name in MART_TABLES}
    assert marts_dir(settings) == settings.data_dir / "marts"
    users = pq.read_table(published["user_features"])
    assert users.column("user_id").to_pylist() == ["u1", "u1", "u2"]
    assert users.column("cutoff_time").to_pylist() == [
        datetime(2024, 1, 4), datetime(2024, 1, 6), datetime(2024, 1, 4)
    ]
    assert users.schema.field("cutoff_time").type == pa.timestamp("us")
    labels = pq.read_table(published["purchase_labels"])
    assert labels.schema.field("label").type == pa.int64()
    assert labels.column("label").to_pylist() == [1]
    # only the snapshots, no temporary files left behind
    assert sorted(p.name for p in marts_dir(settings).iterdir()) == sorted(
        f"{name}.parquet" for name in MART_TABLES
    )


def test_a_missing_mart_leaves_every_old_snapshot_untouched(settings: Settings) -> None:
    _make_marts(settings)
    published = publish_marts(settings)
    before = {name: Path(path).read_bytes() for name, path in published.items()}

    _make_marts(settings, skip="purchase_labels")  # new user_features, no labels
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("insert into marts.user_features values ('u9', timestamp '2024-01-08', 9.0)")
    with pytest.raises(PublishError, match="purchase_labels not found"):
        publish_marts(settings)

    assert {name: Path(path).read_bytes() for name, path in published.items()} == before


def test_read_mart_rejects_unknown_tables_and_missing_warehouses(settings: Settings) -> None:
    with pytest.raises(PublishError, match="unknown mart 'orders'"):
        read_mart(settings, "orders")
    with pytest.raises(PublishError, match="no DuckDB warehouse"):
        read_mart(settings, "user_features")


def test_doubles_that_differ_in_the_last_bits_publish_the_same() -> None:
    """Two DuckDB builds of one mart sum doubles in different orders; the snapshot is one."""
    import pyarrow as pa

    from shopflow.transform.publish import _normalise_types

    first = pa.table({"monetary": [0.1 + 0.2, 1234.5678], "n": pa.array([1, 2], pa.int32())})
    second = pa.table({"monetary": [0.3, 1234.5678 + 1e-11], "n": pa.array([1, 2], pa.int32())})
    # one ulp apart, as two DuckDB builds of online_retail's monetary_90d were
    assert _normalise_types(pa.table({"x": [1628.12]})).equals(
        _normalise_types(pa.table({"x": [1628.1200000000001]})))
    assert _normalise_types(pa.table({"x": [None, 1.5]})).column("x").null_count == 1
    assert first.column("monetary") != second.column("monetary")
    assert _normalise_types(first).equals(_normalise_types(second))
    assert _normalise_types(first).schema.field("n").type == pa.int64()


def test_marts_are_one_set_switched_by_one_pointer(settings: Settings) -> None:
    """Each publication is a new folder; ``data_dir/marts`` points at the latest; the
    set it replaced is kept for readers that opened it, older ones are removed."""
    from shopflow.transform.publish import published_version, versions_dir

    _make_marts(settings)
    publish_marts(settings)
    first = published_version(settings)
    publish_marts(settings)
    second = published_version(settings)
    publish_marts(settings)
    third = published_version(settings)

    assert marts_dir(settings).is_symlink()
    assert len({first, second, third}) == 3
    assert sorted(p.name for p in versions_dir(settings).iterdir()) == sorted([second, third])
    assert (marts_dir(settings) / "user_features.parquet").resolve().parent.name == third


def test_a_publication_killed_before_the_switch_leaves_the_old_set(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A set written but never switched to is invisible, and the next publication removes it."""
    import shopflow.transform.publish as publish
    from shopflow.transform.publish import published_version, versions_dir

    _make_marts(settings)
    publish_marts(settings)
    old = published_version(settings)

    def killed(settings: Settings, folder: Path) -> None:
        raise KeyboardInterrupt("killed between writing the set and switching to it")

    monkeypatch.setattr(publish, "_switch", killed)
    with pytest.raises(KeyboardInterrupt):
        publish_marts(settings)
    assert published_version(settings) == old
    assert len(list(versions_dir(settings).iterdir())) == 2  # the abandoned set is there

    monkeypatch.undo()
    publish_marts(settings)
    assert sorted(p.name for p in versions_dir(settings).iterdir()) == sorted(
        [old, published_version(settings)])


def test_a_plain_marts_folder_from_before_becomes_a_versioned_set(settings: Settings) -> None:
    folder = marts_dir(settings)
    folder.mkdir(parents=True)
    (folder / "user_features.parquet").write_bytes(b"old")
    _make_marts(settings)
    publish_marts(settings)
    assert folder.is_symlink()
    assert pq.read_table(folder / "user_features.parquet").num_rows == 3


def test_a_mart_streams_in_batches_to_the_same_rows_as_one_read(settings: Settings) -> None:
    """Publication holds one batch at a time; batch by batch, the mart is the same table."""
    from shopflow.transform.publish import iter_mart_batches

    _make_marts(settings)
    batches = list(iter_mart_batches(settings, "user_features", batch_rows=1))
    assert [b.num_rows for b in batches] == [1, 1, 1]
    assert pa.Table.from_batches(batches).equals(read_mart(settings, "user_features"))


def test_an_empty_mart_publishes_an_empty_snapshot_with_its_columns(settings: Settings) -> None:
    _make_marts(settings)
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute("delete from marts.item_features")
    published = publish_marts(settings)
    items = pq.read_table(published["item_features"])
    assert items.num_rows == 0
    assert items.schema.names == ["item_id", "cutoff_time", "item_popularity_rank"]
    assert items.schema.field("item_popularity_rank").type == pa.int64()
