"""One pseudonymization for the package, GX results pseudonymized, retention by file age."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.privacy import KEY_FILE, IdHasher, expire, id_hasher
from shopflow.quality.pseudonymize import checked_columns, pseudonymize_result
from shopflow.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings


def test_tokens_are_stable_per_home_keyed_and_text(settings: Settings, tmp_path: Path) -> None:
    hash_id = id_hasher(settings)
    token = hash_id("17850")
    assert token == IdHasher(settings.home_dir)("17850") and len(token) == 16
    assert int(token, 16) >= 0 and token != "17850"
    assert hash_id(17850) == token  # numeric ids as read from data hash as their text
    assert (settings.home_dir / KEY_FILE).is_file()  # where the service's logs keep it
    assert IdHasher(tmp_path / "another_home")("17850") != token  # another key
    assert hash_id.value(None) is None and hash_id.value(float("nan")) != hash_id.value("x")
    assert hash_id.value({"user_id": "17850", "cutoff_time": "2024-01-07"}) == {
        "user_id": token, "cutoff_time": "2024-01-07"}


def test_sampled_values_of_a_gx_result_become_tokens(settings: Settings) -> None:
    hash_id = id_hasher(settings)
    result = {
        "unexpected_count": 3,
        "partial_unexpected_list": [" 17850", None, " 17850"],
        "partial_unexpected_counts": [{"value": " 17850", "count": 2}, {"value": None, "count": 1}],
        "partial_unexpected_index_list": [4, 9, 12],
    }
    pseudonymize_result(result, hash_id)
    token = hash_id(" 17850")
    assert result["partial_unexpected_list"] == [token, None, token]
    assert result["partial_unexpected_counts"] == [{"value": token, "count": 2},
                                                   {"value": None, "count": 1}]
    assert result["partial_unexpected_index_list"] == [4, 9, 12]  # row positions, not ids
    assert checked_columns({"column_list": ["user_id", "cutoff_time"]}) == {"user_id",
                                                                           "cutoff_time"}
    assert checked_columns({"column_A": "a", "column_B": "b"}) == {"a", "b"}


def test_expire_deletes_what_is_older_than_the_retention(tmp_path: Path) -> None:
    old_file, new_file, old_dir = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "batch"
    old_file.write_text("x")
    new_file.write_text("y")
    old_dir.mkdir()
    (old_dir / "rows.parquet").write_text("z")
    week_ago = time.time() - 7 * 86_400
    for path in (old_file, old_dir):
        os.utime(path, (week_ago, week_ago))
    paths = [old_file, new_file, old_dir]
    assert expire(paths, None) == 0 and all(p.exists() for p in paths)  # None: forever
    assert expire(paths, timedelta(days=8)) == 0
    assert expire(paths, timedelta(days=6)) == 2
    assert [p.exists() for p in paths] == [False, True, False]


def test_retention_settings_have_env_overrides_and_none(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings().privacy.retention
    assert defaults.logs == timedelta(days=30) and defaults.quarantine == timedelta(days=90)
    monkeypatch.setenv("SHOPFLOW_PRIVACY__RETENTION__LOGS", "7d")
    loaded = load_settings(privacy={"retention": {"quarantine": None}})
    assert loaded.privacy.retention.logs == timedelta(days=7)
    assert loaded.privacy.retention.quarantine is None
    with pytest.raises(ConfigError, match="privacy.retention"):
        load_settings(privacy={"retention": {"log": "7d"}})


def test_the_config_fingerprint_ignores_retention() -> None:
    from shopflow.settings import settings_fingerprint

    assert settings_fingerprint(load_settings()) == settings_fingerprint(
        load_settings(privacy={"retention": {"logs": "1d"}}))


def _age(path: Path, days: float) -> None:
    stamp = time.time() - days * 86_400
    os.utime(path, (stamp, stamp))


def test_the_shadow_log_drops_day_files_past_retention_when_a_day_starts(tmp_path: Path) -> None:
    from shopflow.serving.shadow import ShadowScorer

    old, recent = tmp_path / "shadow-20200101.jsonl", tmp_path / "shadow-20200301.jsonl"
    for path, days in ((old, 40), (recent, 10)):
        path.write_text('{"user": "0123456789abcdef"}\n')
        _age(path, days)
    scorer = ShadowScorer(
        directory=tmp_path, hash_id=str, keep=timedelta(days=30),
        score=lambda model, ids: (np.full(len(ids), 0.5), np.ones(len(ids), dtype=bool)),
    )
    scorer.challenger = SimpleNamespace(version="b")  # type: ignore[assignment]
    scorer.submit(["u1"], SimpleNamespace(version="a"), [0.1], [True])  # type: ignore[arg-type]
    scorer.log.close()  # writes without the thread: a new file begins
    assert not old.exists() and recent.exists()
    assert len(list(tmp_path.glob("shadow-*.jsonl"))) == 2


def test_quarantine_folders_past_retention_go_when_a_new_one_is_made(settings: Settings) -> None:
    from shopflow.quality.quarantine import record_blocked_build
    from shopflow.quality.result import GateResult

    stale, kept = settings.quarantine_dir / "b_old", settings.quarantine_dir / "b_recent"
    for folder, days in ((stale, 100), (kept, 10)):
        folder.mkdir(parents=True)
        (folder / "rows.parquet").write_bytes(b"")
        _age(folder, days)
    made = record_blocked_build(settings, GateResult(layer="marts", batch_id=None, success=False,
                                                     checks=[]))
    assert made.is_dir() and kept.is_dir() and not stale.exists()
