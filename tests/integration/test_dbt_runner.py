"""run_dbt and ``shopflow transform`` against real dbt on DuckDB: incremental staging,
clear failures, and a leakage test that really catches a mart reading past its cutoff."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb
import pytest
from click.testing import CliRunner

from fixtures_raw import HAND_TASK, RawEvent, hand_events, write_raw_events
from shopflow.cli import cli
from shopflow.settings import Settings, load_settings
from shopflow.transform import DbtError, dbt_project_dir, run_dbt

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def hand_settings(shopflow_home: Path) -> Settings:
    loaded = load_settings(task=HAND_TASK)
    loaded.ensure_dirs()
    return loaded


def _staged(settings: Settings) -> list[tuple]:
    sql = (
        "select user_id, item_id, event_time, batch_id "
        f"from {settings.warehouse.schema('staging')}.stg_shop__events "
        "order by event_time, user_id, item_id"
    )
    if settings.warehouse.backend == "duckdb":
        with duckdb.connect(str(settings.warehouse_path)) as conn:
            return conn.execute(sql).fetchall()
    import sqlalchemy as sa

    engine = sa.create_engine(settings.warehouse.postgres_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_backend_settings(request: pytest.FixtureRequest, hand_settings: Settings) -> Settings:
    if request.param == "duckdb":
        return hand_settings
    prefix = request.getfixturevalue("postgres_schema_prefix")
    return load_settings(
        task=HAND_TASK,
        warehouse={"backend": "postgres", "postgres_url": request.getfixturevalue("postgres_url"),
                   "schema_prefix": prefix},
    )


def test_staging_is_incremental_and_never_duplicates(any_backend_settings: Settings) -> None:
    settings = any_backend_settings
    first_batch = [event for event in hand_events() if event.batch_id == "b1"]
    write_raw_events(settings, first_batch)
    run_dbt(settings, select="stg_shop__events")
    before = _staged(settings)
    assert len(before) == len(first_batch)

    late = datetime(2024, 1, 23)
    new_batch = [
        # the same event as row 1, delivered again: must not appear twice
        replace(first_batch[0], batch_id="b3", source_row=1, ingested_at=late),
        RawEvent("u5", "i9", "view", datetime(2024, 1, 21, 8), 3.0, batch_id="b3",
                 source_row=2, ingested_at=late),
    ]
    write_raw_events(settings, new_batch, replace_table=False)
    result = run_dbt(settings, select="stg_shop__events")
    assert result.node("stg_shop__events").status == "success"
    after = _staged(settings)
    assert after == sorted([*before, ("u5", "i9", datetime(2024, 1, 21, 8), "b3")],
                           key=lambda row: (row[2], row[0], row[1]))

    # a re-run with nothing new changes nothing
    run_dbt(settings, select="stg_shop__events")
    assert _staged(settings) == after

    # raw rewritten without u5: only a full refresh forgets it
    write_raw_events(settings, first_batch)
    run_dbt(settings, select="stg_shop__events", full_refresh=True)
    assert _staged(settings) == before


def test_dbt_leaves_the_warehouse_file_to_other_processes(hand_settings: Settings) -> None:
    """dbt-duckdb's process-wide connection is closed after each run: no lock, no cache held."""
    write_raw_events(hand_settings, hand_events())
    run_dbt(hand_settings, select="stg_shop__events")
    opened = subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print(c.execute('select count(*) from staging.stg_shop__events').fetchone()[0])",
         str(hand_settings.warehouse_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert int(opened.stdout) == len(_staged(hand_settings)) > 0


def test_no_raw_events_is_a_clear_error(hand_settings: Settings) -> None:
    with duckdb.connect(str(hand_settings.warehouse_path)) as conn:
        conn.execute("create schema raw")
    with pytest.raises(DbtError) as caught:
        run_dbt(hand_settings, select="stg_shop__events")
    assert "run `shopflow ingest` first" in str(caught.value)
    broken = [node for node in caught.value.failures if node.status != "skipped"]
    assert [(node.name, node.status) for node in broken] == [("stg_shop__events", "error")]


def test_a_failing_data_test_stops_the_build_and_names_the_test(hand_settings: Settings) -> None:
    events = [*hand_events(), RawEvent("u9", "i1", "wishlist", datetime(2024, 1, 5), 1.0, source_row=99)]
    write_raw_events(hand_settings, events)
    with pytest.raises(DbtError) as caught:
        run_dbt(hand_settings)
    error = caught.value
    failed = [node for node in error.failures if node.status == "fail"]
    assert [node.name for node in failed] == [
        "accepted_values_stg_shop__events_event_type__view__cart__purchase__return"
    ]
    assert "accepted_values_stg_shop__events_event_type" in str(error)
    # nothing downstream of the bad staging table was built
    assert error.result is not None
    assert error.result.node("user_features").status == "skipped"
    with duckdb.connect(str(hand_settings.warehouse_path)) as conn:
        marts = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'marts'"
        ).fetchone()
    assert marts == (0,)


def _project_reading_past_the_cutoff(tmp_path: Path) -> Path:
    """A copy of the dbt project whose event window reads on to the label window's end."""
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    window = project / "models" / "intermediate" / "int_user_events_by_cutoff.sql"
    honest = "and events.event_time <= cutoffs.cutoff_time"
    assert honest in window.read_text()
    window.write_text(window.read_text().replace(
        honest, "and events.event_time <= cutoffs.label_window_end"
    ))
    return project


#: Builds the marts past the leak: the intermediate's own range test and unit test would
#: stop the build first, and so would the feature families' tests (they read the same
#: window); skipped, so the marts are built and the marts' leakage tests get to judge them.
_BUILD_PAST_THE_WINDOW_CHECKS = (
    "build --exclude int_user_events_by_cutoff_inside_lookback"
    " first_in_window_flags_open_each_kind_once_per_window"
    " tag:feature_family,resource_type:test"
)
_FAMILIES = ("timing", "trend", "intent", "session", "context", "time_profile", "money")


def _failed_tests(caught: pytest.ExceptionInfo[DbtError]) -> set[str]:
    return {node.name for node in caught.value.failures if node.status == "fail"}


def test_leakage_test_fails_when_features_read_past_the_cutoff(
    hand_settings: Settings, tmp_path: Path
) -> None:
    project = _project_reading_past_the_cutoff(tmp_path)
    write_raw_events(hand_settings, hand_events())

    with pytest.raises(DbtError) as caught:
        run_dbt(
            hand_settings,
            command=_BUILD_PAST_THE_WINDOW_CHECKS,
            select="+user_features +item_features",
            project_dir=project,
        )
    assert {"assert_user_features_use_no_future_events",
            "assert_item_features_use_no_future_events"} <= _failed_tests(caught)

    # each feature family's own leakage test sees it too
    with pytest.raises(DbtError) as caught:
        run_dbt(hand_settings, command="test", select="tag:feature_family",
                project_dir=project)
    assert {f"assert_int_user_{family}_features_use_no_future_events"
            for family in _FAMILIES} <= _failed_tests(caught)


def test_sampled_leakage_tests_still_catch_a_leak_of_every_shopper(
    any_backend_settings: Settings, tmp_path: Path
) -> None:
    """With quality.leakage_sample_above_users at 0 every leakage test recounts only a hash
    sample of shoppers (half of them here, as on a large warehouse a tenth): an honest
    build passes, and a window that reads past every cutoff still fails the tests."""
    quality = any_backend_settings.quality.model_copy(
        update={"leakage_sample_above_users": 0, "leakage_sample_fraction": 0.5}
    )
    settings = any_backend_settings.model_copy(update={"quality": quality})
    write_raw_events(settings, hand_events())
    assert run_dbt(settings, select="+user_features +item_features").success
    compiled = settings.home_dir / "dbt" / "target" / "compiled" / "shopflow" / "tests"
    for name in ("assert_user_features_use_no_future_events",
                 "assert_user_lifetime_features_use_no_future_events",
                 *(f"assert_int_user_{family}_features_use_no_future_events"
                   for family in _FAMILIES)):
        assert "% 10000) < 5000" in (compiled / f"{name}.sql").read_text(), name

    project = _project_reading_past_the_cutoff(tmp_path)
    with pytest.raises(DbtError) as caught:
        run_dbt(settings, command=_BUILD_PAST_THE_WINDOW_CHECKS,
                select="+user_features +item_features", project_dir=project)
    assert "assert_user_features_use_no_future_events" in _failed_tests(caught)
    with pytest.raises(DbtError) as caught:
        run_dbt(settings, command="test", select="tag:feature_family", project_dir=project)
    assert {f"assert_int_user_{family}_features_use_no_future_events"
            for family in _FAMILIES} <= _failed_tests(caught)


def test_lifetime_leakage_test_fails_when_lifetime_features_read_past_the_cutoff(
    hand_settings: Settings, tmp_path: Path
) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(dbt_project_dir(), project, ignore=shutil.ignore_patterns("target", "logs"))
    lifetime = project / "models" / "intermediate" / "int_user_lifetime_by_cutoff.sql"
    honest = "rows between unbounded preceding and current row"
    assert honest in lifetime.read_text()
    # running totals that peek one cutoff ahead: the next bucket's events leak in
    lifetime.write_text(lifetime.read_text().replace(
        honest, "rows between unbounded preceding and 1 following"
    ))
    write_raw_events(hand_settings, hand_events())

    with pytest.raises(DbtError) as caught:
        # skip the intermediate's own time check so the mart's leakage test gets to judge
        run_dbt(
            hand_settings,
            command="build --exclude int_user_lifetime_by_cutoff_no_event_after_cutoff",
            select="+user_features",
            project_dir=project,
        )
    failed = {node.name for node in caught.value.failures if node.status == "fail"}
    assert "assert_user_lifetime_features_use_no_future_events" in failed


def test_cli_prints_each_node_with_status_and_time(
    hand_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_raw_events(hand_settings, hand_events())
    for key, value in HAND_TASK.items():
        monkeypatch.setenv(f"SHOPFLOW_TASK__{key.upper()}", value)
    result = CliRunner().invoke(cli, ["transform", "--select", "+int_cutoffs"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("SUCCESS") and " int_cutoffs " in line and line.endswith("s")
               for line in lines), result.output
    assert any(line.startswith("PASS") and "unit_test" in line for line in lines)
    assert lines[-1].startswith("done in ")


def test_cli_failure_exits_non_zero_naming_the_problem(hand_settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["transform", "--select", "stg_shop__events"])
    assert result.exit_code == 1
    assert "raw_events" in result.output


def test_stale_source_freshness_only_warns(hand_settings: Settings) -> None:
    write_raw_events(hand_settings, hand_events())  # ingested_at in January 2024
    result = run_dbt(hand_settings, command="source freshness")
    assert [(node.name, node.status) for node in result.nodes] == [("raw_events", "warn")]


def test_feature_families_work_on_purchase_only_data_without_categories(
    any_backend_settings: Settings,
) -> None:
    """No views, no carts, no category_id (e.g. an order export): the whole build passes,
    every family's leakage test included; intent features are 0 or null, category ones null."""
    from shopflow.features.schema import FAMILY_FEATURES
    from shopflow.transform import read_mart

    settings = any_backend_settings
    orders_only = [replace(event, category_id=None) for event in hand_events()
                   if event.event_type == "purchase"]
    write_raw_events(settings, orders_only)
    result = run_dbt(settings)
    assert result.success
    features = read_mart(settings, "user_features").to_pandas()
    assert len(features) > 0
    assert (features.carted_not_bought_items_lookback == 0).all()
    assert (features.viewed_only_items_lookback == 0).all()
    assert (features.max_views_of_one_item_lookback == 0).all()
    assert (features.touched_item_popularity_lookback >= 1).all()
    for always_null in ("days_since_last_cart", "viewed_price_index_lookback",
                        "touched_category_conversion_rate_lookback",
                        "top_category_share_lookback"):
        assert features[always_null].isna().all(), always_null
    # without a category a price is compared with the whole shop's mean price
    assert features.bought_price_index_lookback.notna().any()
    not_null = [f.name for f in FAMILY_FEATURES if not f.nullable]
    assert features[not_null].notna().all().all()


def test_marts_stage_writes_the_dbt_docs_page_the_view_serves(hand_settings: Settings) -> None:
    from shopflow.pipeline.data_stages import dbt_layer
    from shopflow.pipeline.vocabulary import StageContext
    from shopflow.ui.data import dbt_docs_dir

    write_raw_events(hand_settings, hand_events())
    context = StageContext(run_id="docs", params={}, dag_id="shopflow_training")
    for layer in ("staging", "intermediate"):
        dbt_layer(hand_settings, context, layer=layer)
    result = dbt_layer(hand_settings, context, layer="marts")
    page = dbt_docs_dir(hand_settings) / "static_index.html"
    assert result["docs"] == str(page)
    html = page.read_text()
    assert "user_features" in html and "purchase_labels" in html  # the marts' catalog
    assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="https?://', html)  # offline



def test_dbt_runs_under_the_warehouse_memory_settings(shopflow_home: Path) -> None:
    """dbt's DuckDB gets warehouse.memory_limit / threads (profile ``settings:``) and
    temp_directory (on-run-start): a connection held open on the same file, which shares
    dbt's DuckDB instance, sees the values dbt set."""
    settings = load_settings(
        task=HAND_TASK,
        warehouse={"memory_limit": "768MiB", "threads": 1,
                   "temp_directory": str(shopflow_home / "spill")},
    )
    settings.ensure_dirs()
    write_raw_events(settings, hand_events())
    sql = ("select current_setting('memory_limit'), current_setting('threads'), "
           "current_setting('temp_directory')")
    with duckdb.connect(str(settings.warehouse_path)) as plain:
        assert plain.execute(sql).fetchone() != ("768.0 MiB", 1, str(shopflow_home / "spill"))
        result = run_dbt(settings, select="stg_shop__events")
        assert result.node("stg_shop__events").status == "success"
        assert plain.execute(sql).fetchone() == ("768.0 MiB", 1, str(shopflow_home / "spill"))
        # a second run on the same instance sets nothing twice (DuckDB refuses a second
        # SET temp_directory once it has spilled)
        assert run_dbt(settings, select="stg_shop__events").success
