"""The forget stores one by one, on files a real home holds (no dbt, no Feast run)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd

from shopflow.contract import RECOMMENDER_MODEL
from shopflow.forget import USER_STORES, forget, forget_log
from shopflow.forget.stores import Shopper, remove_from_files
from shopflow.ledger import Ledger
from shopflow.privacy import id_hasher
from shopflow.registry.digest import artefact_digests, verify_artefacts
from shopflow.serving.jsonl_log import remove_user_lines

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings


def _shopper(settings: Settings, user_id: str) -> Shopper:
    return Shopper(user_id=user_id, token=id_hasher(settings)(user_id))


def test_a_bare_home_forgets_nothing_and_still_records_it(settings: Settings) -> None:
    result = forget(settings, "17850")
    assert result.total == 0
    assert list(result.removed) == [s.name for s in USER_STORES]
    (record,) = [json.loads(line) for line in forget_log(settings).read_text().splitlines()]
    assert record["user"] == id_hasher(settings)("17850") and "17850" not in json.dumps(record)


def test_a_stored_recommender_snapshot_is_rewritten_and_still_verifies(settings: Settings) -> None:
    folder = settings.bentoml_home / "models" / "shopflow-recommender" / "r1"
    (folder / "snapshot").mkdir(parents=True)
    (folder / "model.pkl").write_bytes(b"not really a pickle")
    ranked = pd.DataFrame({"user_id": ["17850", "17850", "13047"], "item_id": ["a", "b", "a"],
                           "score": [0.9, 0.5, 0.7], "rank": [1, 2, 1]})
    ranked.to_parquet(folder / "snapshot" / "ranked.parquet", index=False)
    with Ledger(settings.ledger_url) as ledger:
        ledger.record_candidate(version="r1", family="lightgbm", metrics={},
                                model=RECOMMENDER_MODEL, artefacts=artefact_digests(folder))

    removed = remove_from_files(settings, _shopper(settings, "17850"))

    path = "bentoml/models/shopflow-recommender/r1/snapshot/ranked.parquet"
    assert removed == {path: 2}
    left = pd.read_parquet(folder / "snapshot" / "ranked.parquet")
    pd.testing.assert_frame_equal(left, ranked.iloc[[2]].reset_index(drop=True))
    assert verify_artefacts(settings, "r1", folder, model=RECOMMENDER_MODEL)
    assert remove_from_files(settings, _shopper(settings, "17850")) == {}  # idempotent


def test_files_keep_other_users_types_and_nulls(settings: Settings, tmp_path: Path) -> None:
    path = settings.data_dir / "marts" / "user_features.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"user_id": pd.Categorical(["1", "2", None, "1"]),
                          "cutoff_time": pd.to_datetime(["2024-01-07"] * 4),
                          "x": [1.0, 2.0, 3.0, None]})
    frame.to_parquet(path, index=False)
    assert remove_from_files(settings, _shopper(settings, "1")) == {
        "data/marts/user_features.parquet": 2}
    left = pd.read_parquet(path)
    assert left["user_id"].tolist()[0] == "2" and pd.isna(left["user_id"].iloc[1])
    assert left["x"].tolist() == [2.0, 3.0] and str(left["cutoff_time"].dtype).startswith(
        "datetime64")


def test_jsonl_logs_lose_only_the_shoppers_lines(tmp_path: Path) -> None:
    log = tmp_path / "shadow-20240101.jsonl"
    log.write_text('{"user": "aa"}\n{"user": "bb"}\n{"user": "aa"}\n{"user": "a')  # torn tail
    assert remove_user_lines(log, "aa") == 2
    assert log.read_text() == '{"user": "bb"}\n{"user": "a'
    assert remove_user_lines(log, "aa") == 0
