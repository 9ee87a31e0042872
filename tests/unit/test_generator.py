"""The synthetic generator: deterministic, contract-shaped, messy at the configured rates,
with a funnel and a signal that look like a shop's."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shopflow.ingest.generator import generate_events, iter_event_tables, output_format
from shopflow.settings import CANONICAL_COLUMNS, EVENT_TYPES, GeneratorSettings

if TYPE_CHECKING:
    from pathlib import Path

EVENTS = 60_000


def _frame(params: GeneratorSettings, stats: dict[str, int] | None = None) -> pd.DataFrame:
    return pa.concat_tables(list(iter_event_tables(params, stats=stats))).to_pandas()


@pytest.fixture(scope="module")
def params() -> GeneratorSettings:
    return GeneratorSettings(events=EVENTS, days=120, seed=11, chunk_events=20_000)


@pytest.fixture(scope="module")
def events(params: GeneratorSettings) -> pd.DataFrame:
    return _frame(params)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("suffix", ["parquet", "csv", "csv.gz"])
def test_same_arguments_give_byte_identical_files(tmp_path: Path, suffix: str) -> None:
    params = GeneratorSettings(events=5_000, days=30, seed=5, chunk_events=2_000)
    first = generate_events(params, tmp_path / f"a.{suffix}", progress=False)
    second = generate_events(params, tmp_path / f"b.{suffix}", progress=False)
    assert first.rows == second.rows == 5_000
    assert _sha(first.path) == _sha(second.path)
    other = generate_events(params.model_copy(update={"seed": 6}), tmp_path / f"c.{suffix}",
                            progress=False)
    assert _sha(other.path) != _sha(first.path)


def test_exact_row_count_and_contract_schema(tmp_path: Path, params: GeneratorSettings) -> None:
    summary = generate_events(params, tmp_path / "events.parquet", progress=False)
    table = pq.read_table(summary.path)
    assert table.num_rows == EVENTS == summary.rows
    assert table.column_names == list(CANONICAL_COLUMNS)
    schema = table.schema
    for name in ("user_id", "item_id", "event_type", "order_id", "category_id"):
        assert pa.types.is_string(schema.field(name).type), name
    assert schema.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert pa.types.is_floating(schema.field("price").type)
    assert pa.types.is_integer(schema.field("quantity").type)
    assert not tmp_path.joinpath(".events.parquet.tmp").exists()


def test_values_follow_the_contract(events: pd.DataFrame, params: GeneratorSettings) -> None:
    assert set(events["event_type"]) <= set(EVENT_TYPES)
    assert set(events["event_type"]) == set(EVENT_TYPES)
    assert events["item_id"].notna().all()
    times = events["event_time"]
    assert times.min() >= pd.Timestamp("2024-01-01", tz="UTC")
    assert times.max() < pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=params.days)
    returns = events[events["event_type"] == "return"]
    assert (returns["quantity"] < 0).all()
    assert (events.loc[events["event_type"] != "return", "quantity"] > 0).all()
    purchases = events[events["event_type"] == "purchase"]
    assert purchases["order_id"].notna().all()
    assert set(returns["order_id"]) <= set(purchases["order_id"])
    assert events.loc[events["event_type"].isin(["view", "cart"]), "order_id"].isna().all()


def test_mess_rates_are_roughly_as_configured(events: pd.DataFrame,
                                              params: GeneratorSettings) -> None:
    n = len(events)
    missing = events["user_id"].isna().mean()
    assert missing == pytest.approx(params.missing_user_rate, rel=0.35)
    # A duplicate may itself lose its user id, so count duplicates on the other columns.
    dup = events.drop(columns=["user_id"]).duplicated().mean()
    assert dup == pytest.approx(params.duplicate_rate, rel=0.35)
    bad_price = (events["price"] <= 0).mean()
    assert bad_price == pytest.approx(params.bad_price_rate, rel=0.5)
    # Late arrivals: rows more than an hour older than something already in the file.
    seconds = events["event_time"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    seconds = seconds.astype(np.int64)
    running_max = np.maximum.accumulate(seconds)
    late = (running_max - seconds > 3600).sum() / n
    assert late == pytest.approx(params.late_event_rate, rel=0.5)


def test_mess_can_be_switched_off() -> None:
    clean = GeneratorSettings(events=8_000, days=30, seed=2, missing_user_rate=0,
                              duplicate_rate=0, bad_price_rate=0, late_event_rate=0)
    frame = _frame(clean)
    assert len(frame) == 8_000
    assert frame["user_id"].notna().all()
    assert (frame["price"] > 0).all()
    assert not frame.duplicated().any()
    assert frame["event_time"].is_monotonic_increasing or (
        frame.loc[frame["event_type"] != "return", "event_time"].diff().dt.total_seconds().min()
        > -3600
    )


def test_funnel_conversion_is_plausible(params: GeneratorSettings) -> None:
    stats: dict[str, int] = {}
    frame = _frame(params, stats)
    conversion = stats["purchase_sessions"] / stats["sessions"]
    assert 0.01 <= conversion <= 0.10, conversion
    counts = frame["event_type"].value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > counts["return"]


def test_weekly_seasonality_and_activity_spread(events: pd.DataFrame,
                                               params: GeneratorSettings) -> None:
    days = events["event_time"].dt.floor("D")
    per_day = events.groupby(days).size()
    weekend = per_day[per_day.index.dayofweek >= 5].mean()
    weekday = per_day[per_day.index.dayofweek < 5].mean()
    assert weekend > weekday
    hours = events["event_time"].dt.hour
    assert (hours.between(18, 21)).sum() > 3 * (hours.between(2, 5)).sum()  # daily rhythm
    # Users come and go: activity spans the period, many users in several months.
    known = events.dropna(subset=["user_id"])
    months = known.groupby("user_id")["event_time"].agg(
        lambda t: (t.dt.dayofyear // 30).nunique()
    )
    assert (months >= 2).mean() > 0.3
    first_seen = known.groupby("user_id")["event_time"].min()
    assert (first_seen > first_seen.min() + pd.Timedelta(days=params.days / 2)).mean() > 0.1


def _rfm_at(events: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int = 30) -> pd.DataFrame:
    past = events[events["event_time"] <= cutoff]
    future = events[(events["event_time"] > cutoff)
                    & (events["event_time"] <= cutoff + pd.Timedelta(days=horizon_days))]
    grouped = past.groupby("user_id")
    kinds = past.groupby(["user_id", "event_type"]).size().unstack(fill_value=0)
    features = pd.DataFrame({
        "recency": (cutoff - grouped["event_time"].max()).dt.total_seconds() / 86400,
        "events": grouped.size(),
    })
    features["carts"] = kinds.get("cart", 0)
    features["purchases"] = kinds.get("purchase", 0)
    features = features.fillna(0)
    buyers = set(future.loc[future["event_type"] == "purchase", "user_id"])
    features["label"] = features.index.isin(buyers).astype(int)
    return features


def _fit_logistic(x: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    """Plain Newton-Raphson logistic regression (a few features; no sklearn import cost)."""
    x = np.column_stack([np.ones(len(x)), x])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        hessian = x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(x.shape[1])
        w += np.linalg.solve(hessian, x.T @ (y - p))
    return w


def _roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    ranks = pd.Series(score).rank().to_numpy()
    positives = y == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_signal_is_learnable_but_not_trivial(events: pd.DataFrame) -> None:
    known = events.dropna(subset=["user_id"])
    start = known["event_time"].min().normalize()
    train = pd.concat([_rfm_at(known, start + pd.Timedelta(days=d)) for d in (42, 49, 56)])
    test = _rfm_at(known, start + pd.Timedelta(days=84))
    assert 0.02 < test["label"].mean() < 0.5

    # Repeat buyers: past purchasers buy again more often than the rest.
    buyers = test[test["purchases"] > 0]["label"].mean()
    others = test[test["purchases"] == 0]["label"].mean()
    assert buyers > 1.5 * others

    columns = ["recency", "events", "carts", "purchases"]
    w = _fit_logistic(np.log1p(train[columns].to_numpy(float)), train["label"].to_numpy())
    score = np.column_stack([np.ones(len(test)), np.log1p(test[columns].to_numpy(float))]) @ w
    auc = _roc_auc(test["label"].to_numpy(), score)
    assert 0.65 < auc < 0.92, auc


def test_chunks_bound_memory_and_late_rows_cross_chunks() -> None:
    params = GeneratorSettings(events=30_000, days=60, seed=4, chunk_events=5_000,
                               late_event_rate=0.05)
    tables = list(iter_event_tables(params))
    assert len(tables) >= 5
    assert sum(t.num_rows for t in tables) == 30_000
    assert max(t.num_rows for t in tables) < 3 * 5_000
    # some rows of a later chunk are older than the previous chunk's newest row
    crossed = 0
    for before, after in zip(tables, tables[1:], strict=False):
        newest = pa.compute.max(before.column("event_time")).as_py()
        crossed += sum(t < newest for t in after.column("event_time").to_pylist())
    assert crossed > 0


def test_output_format_from_name_or_flag() -> None:
    assert output_format("x.parquet") == "parquet"
    assert output_format("x.CSV.GZ") == "csv.gz"
    assert output_format("x.csv") == "csv"
    assert output_format("x.bin", "csv") == "csv"
    with pytest.raises(ValueError, match="cannot tell the output format"):
        output_format("x.json")
    with pytest.raises(ValueError, match="unknown output format"):
        output_format("x.csv", "xlsx")


def test_users_and_items_follow_the_parameters() -> None:
    stats: dict[str, int] = {}
    frame = _frame(GeneratorSettings(events=10_000, days=60, users=300, items=120, seed=9), stats)
    assert stats["users"] == 300
    assert frame["user_id"].nunique() <= 300
    assert frame["item_id"].nunique() <= stats["items"] <= 200
    # ids are text with no float formatting
    assert frame["user_id"].dropna().str.fullmatch(r"\d+").all()


# ---- a period shorter than a day: a minute-level clickstream ------------------------------
CLICKS = GeneratorSettings(events=40_000, period="3h", seed=13, chunk_events=15_000)


@pytest.fixture(scope="module")
def clicks() -> pd.DataFrame:
    return _frame(CLICKS)


def test_sub_day_period_is_respected(clicks: pd.DataFrame) -> None:
    assert len(clicks) == 40_000
    start = pd.Timestamp("2024-01-01", tz="UTC")
    assert clicks["event_time"].min() >= start
    assert clicks["event_time"].max() < start + pd.Timedelta(hours=3)
    # the whole period is used, not a corner of it: events in every 10 minutes
    assert clicks["event_time"].dt.floor("10min").nunique() == 18
    counts = clicks["event_type"].value_counts()
    assert counts["view"] > counts["cart"] > counts["purchase"] > 0
    # late rows arrive minutes (not days) after newer ones
    seconds = clicks["event_time"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    seconds = seconds.astype(np.int64)
    behind = np.maximum.accumulate(seconds) - seconds
    assert 60 < behind.max() < 3 * 3600


def test_sub_day_ids_are_text(clicks: pd.DataFrame) -> None:
    assert clicks["user_id"].dropna().str.fullmatch(r"\d+").all()
    assert clicks["item_id"].str.fullmatch(r"\d+").all()
    assert clicks["order_id"].dropna().str.fullmatch(r"\d+").all()


def test_sub_day_generation_is_deterministic(tmp_path: Path) -> None:
    params = GeneratorSettings(events=6_000, period="2h", seed=5, chunk_events=2_000)
    first = generate_events(params, tmp_path / "a.csv.gz", progress=False)
    second = generate_events(params, tmp_path / "b.csv.gz", progress=False)
    assert _sha(first.path) == _sha(second.path)
    other = generate_events(params.model_copy(update={"period": pd.Timedelta(hours=3)}),
                            tmp_path / "c.csv.gz", progress=False)
    assert _sha(other.path) != _sha(first.path)


def test_a_period_of_whole_days_is_the_day_scale_shop(tmp_path: Path) -> None:
    by_days = generate_events(GeneratorSettings(events=3_000, days=7, seed=1),
                              tmp_path / "days.parquet", progress=False)
    by_period = generate_events(GeneratorSettings(events=3_000, period="7d", seed=1),
                                tmp_path / "period.parquet", progress=False)
    assert _sha(by_days.path) == _sha(by_period.path)


def test_sub_day_task_is_labelable(clicks: pd.DataFrame) -> None:
    """At a 30m horizon (60m lookback, cutoffs every 10m, as configs/clickstream.yaml):
    users come back within the period, some buy more than once, a few per cent of
    (user, cutoff) rows are positive, and past behaviour predicts them."""
    known = clicks.dropna(subset=["user_id"]).drop_duplicates()
    sessions = known.groupby("user_id")["event_time"].agg(
        lambda t: int((t.sort_values().diff() > pd.Timedelta(minutes=10)).sum()) + 1
    )
    assert (sessions >= 3).mean() > 0.2
    orders = known[known["event_type"] == "purchase"].groupby("user_id")["order_id"].nunique()
    assert (orders >= 2).sum() >= 10

    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for minutes in range(60, 150 + 1, 10):
        cutoff = start + pd.Timedelta(minutes=minutes)
        window = known[known["event_time"] > cutoff - pd.Timedelta(minutes=60)]
        features = _rfm_at(window, cutoff, horizon_days=0)
        future = known[(known["event_time"] > cutoff)
                       & (known["event_time"] <= cutoff + pd.Timedelta(minutes=30))]
        buyers = set(future.loc[future["event_type"] == "purchase", "user_id"])
        features["label"] = features.index.isin(buyers).astype(int)
        rows.append(features)
    table = pd.concat(rows)
    assert 0.003 < table["label"].mean() < 0.05, table["label"].mean()
    carted = table[table["carts"] > 0]["label"].mean()
    assert carted > 1.5 * table[table["carts"] == 0]["label"].mean()


def test_period_settings_are_validated_and_dump_once() -> None:
    from pydantic import ValidationError

    assert GeneratorSettings(period="6h").period_seconds == 6 * 3600
    assert GeneratorSettings(period="6h").sub_day
    assert GeneratorSettings(days=3).period_seconds == 3 * 86_400
    assert not GeneratorSettings(period="2d").sub_day
    with pytest.raises(ValidationError, match="not both"):
        GeneratorSettings(days=3, period="6h")
    with pytest.raises(ValidationError, match="whole days"):
        GeneratorSettings(period="36h")
    with pytest.raises(ValidationError, match="at least 10 minutes"):
        GeneratorSettings(period="5m")
    # without a period the dump is what it was before the key existed (fingerprints stay)
    assert "period" not in GeneratorSettings().model_dump()
    dumped = GeneratorSettings(period="90m").model_dump(mode="json")
    assert dumped["period"] == "90m" and "days" not in dumped
    assert GeneratorSettings.model_validate(dumped).period_seconds == 5400


def test_generate_cli_takes_a_period(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from shopflow.cli import cli

    runner = CliRunner()
    out = tmp_path / "clicks.parquet"
    result = runner.invoke(cli, ["generate", "--events", "3000", "--period", "2h", "--seed", "3",
                                 "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    times = pq.read_table(out).column("event_time").to_pandas()
    assert times.max() < pd.Timestamp("2024-01-01T02:00:00", tz="UTC")
    both = runner.invoke(cli, ["generate", "--days", "3", "--period", "2h",
                               "--out", str(tmp_path / "x.parquet"), "--no-progress"])
    assert both.exit_code == 2 and "not both" in both.output
    bad = runner.invoke(cli, ["generate", "--period", "2 fortnights",
                              "--out", str(tmp_path / "y.parquet"), "--no-progress"])
    assert bad.exit_code == 2 and "invalid duration" in bad.output


def test_shipped_clickstream_config_loads() -> None:
    from pathlib import Path

    from shopflow.settings import load_settings

    root = Path(__file__).resolve().parents[2] / "configs"
    clicks = load_settings(root / "clickstream.yaml")
    assert clicks.generator.sub_day and clicks.generator.period_seconds == 6 * 3600
    assert clicks.task.horizon == pd.Timedelta(minutes=30).to_pytimedelta()
    assert clicks.task.cutoff_every == pd.Timedelta(minutes=10).to_pytimedelta()
    retail = load_settings(root / "online_retail_purchases_90d.yaml")
    assert retail.task.horizon == pd.Timedelta(days=90).to_pytimedelta()
    assert retail.config_dir == root


@pytest.mark.parametrize("period", ["3h", None])
def test_shoppers_come_back_to_buy_a_cart_they_left(period: str | None) -> None:
    """cart_return_rate: some sessions that cart without buying are followed by a later
    session of the same user that buys exactly those items; 0 adds none."""
    shape = {"period": period} if period else {"days": 30}
    base = GeneratorSettings(events=30_000, seed=13, chunk_events=10_000,
                             missing_user_rate=0.0, duplicate_rate=0.0, **shape)

    def came_back(params: GeneratorSettings) -> tuple[int, int]:
        events = _frame(params).sort_values("event_time", kind="stable")
        events = events[events["event_type"].isin(["view", "cart", "purchase"])]
        # the session that comes back views and carts the items again, then buys them:
        # a purchase of an item its user had carted twice by then
        carts = (events["event_type"] == "cart").astype(int).groupby(
            [events["user_id"], events["item_id"]]).cumsum()
        buys = events["event_type"] == "purchase"
        return int((buys & (carts >= 2)).sum()), int(buys.sum())

    none, buys_without = came_back(base)
    some, buys_with = came_back(base.model_copy(update={"cart_return_rate": 0.3}))
    assert some > 2 * max(none, 1) and buys_with > buys_without


def test_buyers_check_out_minutes_after_the_cart() -> None:
    """checkout_minutes: a session that buys goes on after its carts (views of the carted
    items) and pays minutes later; 0 keeps the purchase right after the carts and leaves
    the key out of the dump (fingerprints of existing configs stay)."""
    base = GeneratorSettings(events=30_000, period="3h", seed=13, chunk_events=10_000,
                             missing_user_rate=0.0, duplicate_rate=0.0, late_event_rate=0.0)
    assert "checkout_minutes" not in base.model_dump()

    def checkout(params: GeneratorSettings) -> tuple[float, float]:
        events = _frame(params).sort_values(["user_id", "event_time"], kind="stable")
        events = events[events["event_type"].isin(["view", "cart", "purchase"])]
        cart_time = events["event_time"].where(events["event_type"] == "cart")
        last_cart = cart_time.groupby(events["user_id"]).ffill()
        paid = events[events["event_type"] == "purchase"].groupby("order_id").head(1)
        delay = (paid["event_time"] - last_cart[paid.index]).dt.total_seconds()
        # views within 15 minutes after a cart: in a checkout, of the items then bought
        after_cart = ((events["event_type"] == "view")
                      & (events["event_time"] - last_cart < pd.Timedelta(minutes=15)))
        bought = events.loc[events["event_type"] == "purchase", ["user_id", "item_id"]]
        seen = events.loc[after_cart, ["user_id", "item_id"]].merge(bought.drop_duplicates())
        return float(delay.median()), len(seen) / max(int(after_cart.sum()), 1)

    quick, before = checkout(base)
    slow, after = checkout(base.model_copy(update={"checkout_minutes": 8.0}))
    assert quick < 120 and 3 * 60 < slow < 15 * 60, (quick, slow)
    assert after > 2 * before, (before, after)

