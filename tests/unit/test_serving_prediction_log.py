"""The prediction log and its writer: records, rotation, bounded buffer, shutdown, erasure."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from shopflow.privacy import IdHasher
from shopflow.recommend.serving import RecommendationResult, RecommendedItem
from shopflow.serving.jsonl_log import JsonlLog, log_files
from shopflow.serving.prediction_log import (
    COLUMNS,
    LIVE,
    PROBE,
    PredictionLog,
    ServedPredict,
    ServedRecommend,
    prediction_log_dir,
    read_prediction_log,
    remove_user,
)
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

NAMES = ("recency_days", "frequency", "monetary")


def _settings(home: Path, **serving: object) -> Settings:
    # a long interval: nothing is written unless the test flushes or stops the log
    return load_settings(home=home, serving={"prediction_log_flush_interval": 3600.0, **serving})


def _predict(request_id: str, ids: list[str], *, at: float | None = None,
             version: str = "v1") -> ServedPredict:
    n = len(ids)
    features = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    features[-1] = np.nan  # the last user is unknown: no features
    known = np.array([True] * (n - 1) + [False])
    return ServedPredict(request_id, time.time() if at is None else at, version, ids,
                         np.linspace(0.1, 0.9, n), known, features, NAMES)


def _recommend(request_id: str, user: str, **more: object) -> ServedRecommend:
    result = RecommendationResult(user_id=user, items=[RecommendedItem("i9", 0.7, 1),
                                                       RecommendedItem("i3", 0.2, 2)],
                                  model_version="r1", family="popularity", cold_start=False,
                                  snapshot_time="2026-11-01T00:00:00+00:00")
    return ServedRecommend(request_id, time.time(), result, **more)  # type: ignore[arg-type]


def test_records_hold_what_was_served_with_hashed_users(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    hasher = IdHasher(settings.home_dir)
    log = PredictionLog(settings, hash_id=hasher)
    log.start()
    assert log.submit(_predict("a-1", ["u1", "u2", "ghost"]))
    assert log.submit(_recommend("a-2", "u1"))
    assert log.written == 0  # nothing written on the request path
    log.stop()
    assert log.written == 4 and log.pending == 0

    frame = read_prediction_log(settings.home_dir)
    assert list(frame.columns) == COLUMNS
    assert frame["request_id"].tolist() == ["a-1", "a-1", "a-1", "a-2"]
    assert frame["user"].tolist() == [hasher("u1"), hasher("u2"), hasher("ghost"), hasher("u1")]
    assert "u1" not in json.dumps(frame.drop(columns=["at", "as_of"]).to_dict("records"))
    predict = frame[frame["endpoint"] == "predict"]
    assert predict["row"].tolist() == [0, 1, 2]
    assert predict["known_user"].tolist() == [True, True, False]
    assert predict["score"].tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert predict["features"].iloc[0] == {"recency_days": 0.0, "frequency": 1.0, "monetary": 2.0}
    assert predict["features"].iloc[2] == dict.fromkeys(NAMES)  # NaN is written as null
    recommend = frame[frame["endpoint"] == "recommend"].iloc[0]
    assert recommend["model_version"] == "r1" and recommend["features"] is None
    assert recommend["items"] == [{"item_id": "i9", "rank": 1, "score": 0.7},
                                  {"item_id": "i3", "rank": 2, "score": 0.2}]
    assert str(frame["at"].dt.tz) == "UTC"
    assert frame["source"].tolist() == ["live"] * 4 and frame["as_of"].isna().all()


def test_as_of_and_source_are_logged_and_unknown_keys_kept(tmp_path: Path) -> None:
    """``as_of`` (the features' data time) and ``source`` (live or probe) are logged per
    row; a key a newer writer adds comes back as an extra column."""
    settings = _settings(tmp_path)
    log = PredictionLog(settings, hash_id=str)
    watermark = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert log.submit(_predict("a-1", ["u1", "ghost"])._replace(as_of=watermark, source=PROBE))
    assert log.submit(_recommend("a-2", "u1", as_of=watermark))
    log.close()
    with open(log_files(prediction_log_dir(settings.home_dir), "predictions")[0], "a") as f:
        f.write(json.dumps({"request_id": "a-3", "at": "2099-01-01T00:00:00+00:00",
                            "endpoint": "predict", "user": "u9", "arm": "challenger",
                            "later_key": 1}) + "\n")
    frame = read_prediction_log(settings.home_dir)
    assert list(frame.columns) == [*COLUMNS, "later_key"]
    assert frame["source"].tolist() == [PROBE, PROBE, LIVE, LIVE]  # no source: live
    assert frame["as_of"].iloc[:3].tolist() == [pd.Timestamp("2026-03-01", tz="UTC")] * 3
    assert pd.isna(frame["as_of"].iloc[3]) and frame["arm"].iloc[3] == "challenger"


def test_a_full_buffer_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    log = PredictionLog(_settings(tmp_path, prediction_log_max_pending=2), hash_id=str)
    assert log.submit(_predict("1", ["a"])) and log.submit(_predict("2", ["b"]))
    assert not log.submit(_predict("3", ["c"]))
    assert log.dropped == 1 and log.pending == 2
    log.flush()
    assert log.written == 2 and log.pending == 0
    assert log.submit(_predict("4", ["d"]))
    log.close()


def test_files_rotate_by_size_and_period(tmp_path: Path) -> None:
    log: JsonlLog[int] = JsonlLog(directory=tmp_path, prefix="t", max_bytes=50,
                                  to_records=lambda i: [{"i": i, "pad": "x" * 40}])
    for i in range(3):
        log.submit(i)
        log.flush()
    log.close()
    assert len(log_files(tmp_path, "t")) == 3 and log.files == 3
    hourly: JsonlLog[int] = JsonlLog(directory=tmp_path / "h", prefix="t", rotate_seconds=3600,
                                     to_records=lambda i: [{"i": i}])
    hourly._file(7200.0)
    hourly._file(7300.0)  # same hour: same file
    hourly._file(10_800.0)  # next hour: a new one, named for the hour it began
    hourly.close()
    names = [p.name for p in log_files(tmp_path / "h", "t")]
    assert [n.split("-")[1] for n in names] == ["19700101T020000", "19700101T030000"]


def test_a_bad_item_is_counted_and_the_rest_written(tmp_path: Path) -> None:
    def records(i: int) -> list[dict[str, object]]:
        if i == 1:
            raise ValueError("broken")
        return [{"i": i}]

    log: JsonlLog[int] = JsonlLog(directory=tmp_path, prefix="t", to_records=records)
    for i in range(3):
        log.submit(i)
    log.flush()
    log.close()
    assert log.written == 2 and log.failed == 1


def test_reader_skips_a_torn_last_line_and_filters_by_time(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    log = PredictionLog(settings, hash_id=str)
    log.start()
    old = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    log.submit(_predict("old", ["a", "b"], at=old))
    log.submit(_predict("new", ["c", "d"]))
    log.stop()
    (path,) = log_files(prediction_log_dir(settings.home_dir), "predictions")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"request_id": "torn", "at"')  # a crash in the middle of a line
    assert read_prediction_log(settings.home_dir)["request_id"].tolist() == [
        "old", "old", "new", "new"]
    since = datetime.now(UTC) - timedelta(hours=1)
    assert set(read_prediction_log(settings.home_dir, since=since)["request_id"]) == {"new"}
    naive = since.replace(tzinfo=None)
    assert len(read_prediction_log(settings.home_dir, since=naive)) == 2
    future = datetime.now(UTC) + timedelta(hours=1)
    empty = read_prediction_log(settings.home_dir, since=future)
    assert empty.empty and list(empty.columns) == COLUMNS


def test_remove_user_rewrites_files_and_the_writer_carries_on(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    hasher = IdHasher(settings.home_dir)
    log = PredictionLog(settings, hash_id=hasher)
    log.submit(_predict("1", ["alice", "bob", "ghost"]))
    log.submit(_recommend("2", "alice"))
    log.flush()  # the file stays open in the writer
    assert remove_user(settings.home_dir, hasher("alice")) == 2
    assert remove_user(settings.home_dir, hasher("alice")) == 0
    log.submit(_predict("3", ["carol", "x"]))
    log.flush()  # must land in the rewritten file, not the replaced one
    log.close()
    frame = read_prediction_log(settings.home_dir)
    assert frame["user"].tolist() == [hasher(u) for u in ("bob", "ghost", "carol", "x")]
    assert hasher("alice") not in set(frame["user"])


def test_forget_erases_the_shopper_from_the_prediction_log(tmp_path: Path) -> None:
    from shopflow.forget.stores import USER_STORES, Shopper, remove_from_prediction_log

    settings = _settings(tmp_path)
    hasher = IdHasher(settings.home_dir)
    log = PredictionLog(settings, hash_id=hasher)
    log.submit(_predict("1", ["alice", "bob", "ghost"]))
    log.close()
    removed = remove_from_prediction_log(settings, Shopper("alice", hasher("alice")))
    ((where, rows),) = removed.items()
    assert rows == 1 and where.startswith("predictions/predictions-")
    assert remove_from_prediction_log(settings, Shopper("alice", hasher("alice"))) == {}
    assert "prediction_log" in [store.name for store in USER_STORES]


def test_files_past_retention_go_when_a_new_file_begins(tmp_path: Path) -> None:
    settings = _settings(tmp_path, prediction_log_rotate_seconds=1.0)
    directory = prediction_log_dir(settings.home_dir)
    directory.mkdir(parents=True)
    stale = directory / "predictions-20200101T000000-1-1.jsonl"
    stale.write_text('{"user": "0123456789abcdef"}\n')
    stamp = time.time() - 40 * 86_400  # older than privacy.retention.logs (30 days)
    os.utime(stale, (stamp, stamp))
    log = PredictionLog(settings, hash_id=str)
    log.submit(_predict("1", ["a"]))
    log.close()
    assert not stale.exists() and len(log_files(directory, "predictions")) == 1


def test_ab_arms_are_logged_with_their_rows_in_the_request(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    log = PredictionLog(settings, hash_id=IdHasher(settings.home_dir))
    log.start()
    # one request of four users: rows 0 and 2 in the champion arm, 1 and 3 the challenger's
    champion = _predict("r-1", ["a", "c"], version="v-old")._replace(arm="champion", rows=[0, 2])
    challenger = _predict("r-1", ["b", "d"], version="v-new")._replace(arm="challenger",
                                                                       rows=[1, 3])
    assert log.submit(champion) and log.submit(challenger)
    assert log.submit(_predict("r-2", ["e"]))  # no test running: no arm
    log.stop()
    frame = read_prediction_log(settings.home_dir).sort_values(["request_id", "row"])
    assert frame["row"].tolist() == [0, 1, 2, 3, 0]
    assert frame["arm"].tolist() == ["champion", "challenger", "champion", "challenger", None]
    assert frame["model_version"].tolist() == ["v-old", "v-new", "v-old", "v-new", "v1"]
