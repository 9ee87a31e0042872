"""Recommendations end to end on a real warehouse: dbt marts, rankers, gate, store, serving.

One synthetic shop (the generator's users have favourite categories and items have Zipf
popularity, so "what will they buy next" has a known, learnable signal) is ingested into
a DuckDB warehouse with a few probe events around a cutoff, the dbt models run for real,
and the module's tests share that warehouse.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from shopflow.settings import Settings, load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = {"horizon": "14d", "lookback": "42d", "cutoff_every": "7d"}
# Cutoffs are epoch-aligned multiples of 7 days: Thursdays at 00:00 UTC.
PROBE_CUTOFF = pd.Timestamp("2024-02-29 00:00:00")
NEXT_CUTOFF = PROBE_CUTOFF + pd.Timedelta(days=7)


def _probe_events() -> pd.DataFrame:
    """A shopper who views P before the cutoff, buys Q exactly at it and P one second after."""
    rows = [
        ("probe", "item_p", "view", PROBE_CUTOFF - pd.Timedelta(days=1), None),
        ("probe", "item_q", "purchase", PROBE_CUTOFF, "probe-o1"),
        ("probe", "item_p", "purchase", PROBE_CUTOFF + pd.Timedelta(seconds=1), "probe-o2"),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "event_time",
                                        "order_id"])
    return frame.assign(price=5.0, quantity=1, category_id="cat_000")


def _write_raw(settings: Settings) -> int:
    """Generator events (rows without a user dropped, as ingestion would) + probes."""
    import duckdb
    import pyarrow as pa
    import pyarrow.compute as pc

    from shopflow.ingest.generator import iter_event_tables

    table = pa.concat_tables(list(iter_event_tables(settings.generator)))
    table = table.filter(pc.is_valid(table["user_id"]))
    events = table.to_pandas()
    events["event_time"] = events["event_time"].dt.tz_convert("UTC").dt.tz_localize(None)
    events = pd.concat([events, _probe_events()], ignore_index=True)
    events = events.assign(batch_id="b1", source_file="/synthetic.parquet",
                           source_row=range(1, len(events) + 1),
                           ingested_at=pd.Timestamp("2024-06-01"))
    with duckdb.connect(str(settings.warehouse_path)) as conn:
        conn.execute(f"create schema if not exists {settings.warehouse.schema('raw')}")
        conn.register("events_frame", events)
        conn.execute(
            f"create or replace table {settings.warehouse.schema('raw')}.raw_events as "
            "select cast(user_id as varchar) as user_id, cast(item_id as varchar) as item_id, "
            "cast(event_type as varchar) as event_type, cast(event_time as timestamp) as event_time, "
            "cast(price as double) as price, cast(quantity as integer) as quantity, "
            "cast(order_id as varchar) as order_id, cast(category_id as varchar) as category_id, "
            "batch_id, source_file, cast(source_row as bigint) as source_row, "
            "cast(ingested_at as timestamp) as ingested_at from events_frame"
        )
    return len(events)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from shopflow.recommend.data import build_marts

    home = Path(tmp_path_factory.mktemp("recommend")) / "home"
    settings = load_settings(
        home=home, task=TASK, warehouse={"backend": "duckdb", "schema_prefix": ""},
        generator={"events": 40_000, "days": 100, "seed": 11},
    )
    settings.ensure_dirs()
    _write_raw(settings)
    build_marts(settings)
    return settings


@pytest.fixture(scope="module")
def run(warehouse: Settings):
    from shopflow.recommend import RecommendConfig, run_recommendation

    return run_recommendation(warehouse, config=RecommendConfig(max_train_cutoffs=3, seed=7))


def test_probe_purchase_after_the_cutoff_is_a_label_not_a_feature(warehouse: Settings) -> None:
    from shopflow.recommend.data import load_cutoffs, load_mart

    cutoffs = load_cutoffs(warehouse)
    training = set(cutoffs.loc[cutoffs["is_training_cutoff"], "cutoff_time"])
    assert {PROBE_CUTOFF, NEXT_CUTOFF} <= training
    features = load_mart(warehouse, "user_item_features", cutoffs=[PROBE_CUTOFF, NEXT_CUTOFF])
    probe = features[features["user_id"] == "probe"].set_index(["item_id", "cutoff_time"])
    at_cutoff = probe.loc[("item_p", PROBE_CUTOFF)]
    assert at_cutoff["ui_views_lookback"] == 1 and at_cutoff["ui_purchases_lookback"] == 0
    assert at_cutoff["ui_days_since_last_purchase"] == pytest.approx(42.0)  # none: lookback
    assert probe.loc[("item_q", PROBE_CUTOFF), "ui_purchases_lookback"] == 1  # at the cutoff
    assert probe.loc[("item_p", NEXT_CUTOFF), "ui_purchases_lookback"] == 1  # a week later
    labels = load_mart(warehouse, "purchase_item_labels", cutoffs=[PROBE_CUTOFF])
    bought = set(labels.loc[labels["user_id"] == "probe", "item_id"])
    assert bought == {"item_p"}


def test_user_item_features_match_a_recount_from_events_before_the_cutoff(
    warehouse: Settings,
) -> None:
    from shopflow.recommend.data import load_events, load_mart

    events = load_events(warehouse)
    lookback = pd.Timedelta(warehouse.task.lookback)
    window = events[(events["event_time"] > PROBE_CUTOFF - lookback)
                    & (events["event_time"] <= PROBE_CUTOFF)]
    expected = window.groupby(["user_id", "item_id"]).agg(
        events=("event_type", "size"),
        purchases=("event_type", lambda s: int((s == "purchase").sum())),
        last=("event_time", "max"),
    )
    mart = load_mart(warehouse, "user_item_features", cutoffs=[PROBE_CUTOFF])
    mart = mart.set_index(["user_id", "item_id"]).sort_index()
    assert len(mart) == len(expected) > 100
    expected = expected.loc[mart.index]
    assert (mart["ui_events_lookback"] == expected["events"]).all()
    assert (mart["ui_purchases_lookback"] == expected["purchases"]).all()
    days = (PROBE_CUTOFF - expected["last"]).dt.total_seconds() / 86_400
    assert (mart["ui_days_since_last_event"] - days).abs().max() < 1e-6
    assert (mart["last_event_time"] <= PROBE_CUTOFF).all()


def test_rankers_beat_popularity_on_the_same_held_out_cutoffs(run) -> None:
    popularity = run.metrics["popularity"]
    for family in ("lightgbm", "torch"):
        assert run.metrics[family]["ndcg@10"] > popularity["ndcg@10"], family
        assert run.metrics[family]["recall@10"] > popularity["recall@10"], family
        assert run.metrics[family]["users"] == popularity["users"] > 0
    assert 0 < run.candidate_recall["recall_items"] <= 1
    assert set(run.leaderboard["model"]) == {"popularity", "lightgbm", "torch"}
    assert run.leaderboard["ndcg@10"].is_monotonic_decreasing
    # the split is out of time: train < validation < test, label windows purged
    split = run.split
    assert max(split["train"]["cutoffs"]) < min(split["validation"]["cutoffs"])
    assert max(split["validation"]["cutoffs"]) < min(split["test"]["cutoffs"])
    assert run.report_path is not None and "ndcg@10" in run.report_path.read_text()


def test_winner_is_stored_promoted_and_recorded_as_the_recommender(warehouse: Settings,
                                                                    run) -> None:
    from shopflow.ledger import Ledger
    from shopflow.recommend import list_recommenders, recommender_ledger

    assert run.decision.promote and run.decision.reference_name == "baseline"
    assert [m.version for m in list_recommenders(warehouse)] == [run.version]
    ledger = recommender_ledger(warehouse)
    try:
        assert ledger.production().version == run.version
        assert ledger.candidate(run.version).metrics["ndcg@10"] == pytest.approx(
            run.metrics[run.winner]["ndcg@10"])
    finally:
        ledger.close()
    main = Ledger(warehouse.ledger_url)  # the one ledger, read as the propensity model's
    try:
        assert main.production() is None  # the propensity alias is untouched
        assert main.candidates() == []
        assert main.production(model="recommender").version == run.version
        promotion = main.events(model="recommender", kind="promotion")[-1]
        assert promotion.version == run.version and promotion.model == "recommender"
        assert main.status()["recommender"]["production"]["version"] == run.version
    finally:
        main.close()
    assert not list(warehouse.home_dir.glob("ledger.recommender*"))  # no second ledger


def test_champion_is_rescored_on_the_same_rows(warehouse: Settings, run) -> None:
    from shopflow.recommend import RecommendConfig, run_recommendation

    again = run_recommendation(warehouse, families=("lightgbm",), save=False,
                               config=RecommendConfig(max_train_cutoffs=3, seed=7))
    assert again.decision.reference_name == "champion"
    assert "champion" in again.metrics
    assert again.metrics["champion"]["users"] == again.metrics["lightgbm"]["users"]
    if run.winner == "lightgbm":  # same data, same seed: the same model, so no gain
        assert again.metrics["champion"]["ndcg@10"] == pytest.approx(
            again.metrics["lightgbm"]["ndcg@10"])
        assert not again.decision.promote


def test_recommender_serves_known_cold_and_exclude_purchased(warehouse: Settings, run) -> None:
    from shopflow.recommend import Recommender
    from shopflow.recommend.data import load_events

    recommender = Recommender.load(warehouse)
    assert recommender.model_version == run.version and recommender.family == run.winner
    events = load_events(warehouse)
    bought = events[events["event_type"] == "purchase"].groupby("user_id")["item_id"].agg(set)
    # a known user whose own list holds something they bought before
    user = next(u for u in sorted(recommender._spans)
                if u in bought and {i.item_id for i in recommender.recommend(u, 20).items} & bought[u])
    plain = recommender.recommend(user, 10)
    assert not plain.cold_start and len(plain.items) == 10
    assert [i.rank for i in plain.items] == list(range(1, 11))
    assert [i.score for i in plain.items] == sorted((i.score for i in plain.items), reverse=True)
    excluded = recommender.recommend(user, 20, exclude_purchased=True)
    assert len(excluded.items) == 20
    assert not {i.item_id for i in excluded.items} & bought[user]
    cold = recommender.recommend("never-seen-user", 10)
    assert cold.cold_start and cold.model_version == run.version and len(cold.items) == 10
    assert pd.Timestamp(cold.snapshot_time) == events["event_time"].max().tz_localize("UTC")
    assert Recommender.production_version(warehouse) == run.version


def test_popularity_snapshot_serves_everyone_cold(warehouse: Settings) -> None:
    from shopflow.recommend import Recommender
    from shopflow.recommend.data import load_events
    from shopflow.recommend.snapshot import popularity_snapshot

    snapshot = popularity_snapshot(warehouse)
    recommender = Recommender(snapshot, model_version="popularity", family="popularity")
    events = load_events(warehouse)
    user = events["user_id"].iloc[0]
    result = recommender.recommend(user, 5)
    assert result.cold_start and result.family == "popularity" and len(result.items) == 5
    window = events[events["event_time"] > events["event_time"].max() - warehouse.task.lookback]
    best = window[window["event_type"] == "purchase"]["item_id"].value_counts()
    assert result.items[0].item_id == best.index[0]  # the window's best seller first


def test_snapshot_in_chunks_ranks_exactly_as_one_chunk(warehouse: Settings, run) -> None:
    """The window and the marts are prepared once per cutoff; chunks of users only slice
    them. Ranking in many small chunks must give the stored snapshot's lists (one chunk)."""
    from shopflow.recommend.data import load_events
    from shopflow.recommend.snapshot import build_snapshot
    from shopflow.recommend.store import load_recommender

    model, stored, _ = load_recommender(warehouse, run.version)
    chunked = build_snapshot(warehouse, model, events=load_events(warehouse), batch_users=50)
    assert chunked.ranked["user_id"].nunique() > 200  # many chunks were ranked
    assert chunked.ranked.groupby("user_id").size().max() == 100  # full-depth lists
    pd.testing.assert_frame_equal(chunked.ranked, stored.ranked)
    pd.testing.assert_frame_equal(chunked.popular, stored.popular)
    pd.testing.assert_frame_equal(chunked.purchased, stored.purchased)


def test_snapshot_lists_are_feature_frame_scores_of_the_candidates(warehouse: Settings,
                                                                   run) -> None:
    """The snapshot joins candidates to the marts on integer codes; its lists must be
    exactly what candidates -> feature_frame (merges on the text ids) -> score -> top_k
    give, row for row."""
    import numpy as np

    from shopflow.recommend.candidates import CandidateConfig, prepare_window
    from shopflow.recommend.data import EventWindows, load_mart
    from shopflow.recommend.dataset import feature_frame
    from shopflow.recommend.evaluate import top_k
    from shopflow.recommend.snapshot import serving_cutoff, serving_users
    from shopflow.recommend.store import load_recommender

    model, stored, _ = load_recommender(warehouse, run.version)
    cutoff = serving_cutoff(warehouse)
    users = serving_users(warehouse, cutoff)
    chosen = users[np.linspace(0, len(users) - 1, 120).astype(int)]
    lookback = warehouse.task.lookback
    window = prepare_window(EventWindows(warehouse).window(cutoff, lookback), cutoff=cutoff,
                            lookback=lookback, config=CandidateConfig())
    marts = {name: load_mart(warehouse, name, cutoffs=[cutoff])
             for name in ("user_features", "item_features", "user_item_features",
                          "user_category_features")}
    frame = feature_frame(window.candidates(chosen), marts,
                          lookback_days=lookback.total_seconds() / 86_400)
    assert frame["ui_events_lookback"].gt(0).any() and frame["uc_rank"].lt(99).any()
    expected = top_k(frame, model.score(frame), 100)[["user_id", "item_id", "score", "rank"]]
    got = stored.ranked[stored.ranked["user_id"].isin(set(chosen))]
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))


def test_windows_from_the_warehouse_match_the_event_frame(warehouse: Settings) -> None:
    """Each cutoff reads its own window from the warehouse (ids as categoricals, sorted
    categories); the ranking data built that way is the one built from the whole frame."""
    from shopflow.recommend import RecommendConfig
    from shopflow.recommend.candidates import window_events
    from shopflow.recommend.data import EventWindows, load_events
    from shopflow.recommend.dataset import build_ranking_data

    events = load_events(warehouse)
    lookback = warehouse.task.lookback
    from_frame, from_warehouse = EventWindows(warehouse, events), EventWindows(warehouse)
    window = from_warehouse.window(PROBE_CUTOFF, lookback)
    assert window["item_id"].dtype == "category"
    assert window["item_id"].cat.categories.is_monotonic_increasing
    expected = window_events(events, PROBE_CUTOFF, lookback).reset_index(drop=True)
    assert len(window) == len(expected) > 1000
    for column in ("user_id", "item_id", "category_id", "event_type", "order_id"):
        got = window[column].astype(object).where(window[column].notna(), None)
        want = expected[column].where(expected[column].notna(), None)
        assert list(got) == list(want), column
    assert (window["event_time"] == expected["event_time"]).all()
    pd.testing.assert_frame_equal(from_warehouse.purchased(PROBE_CUTOFF),
                                  from_frame.purchased(PROBE_CUTOFF))
    assert from_warehouse.newest() == from_frame.newest()

    config = RecommendConfig(max_train_cutoffs=3, seed=7)
    streamed = build_ranking_data(warehouse, config=config)
    whole = build_ranking_data(warehouse, config=config, events=events)
    assert streamed.feature_names == whole.feature_names
    for part in ("train", "validation", "test"):
        for one, other in zip(getattr(streamed, part), getattr(whole, part), strict=True):
            pd.testing.assert_frame_equal(one.frame, other.frame)
            pd.testing.assert_frame_equal(one.candidates_all, other.candidates_all)
            pd.testing.assert_frame_equal(one.labels, other.labels)
