"""``shopflow train`` on a ready training frame, then ``shopflow status``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_train_then_status(settings: Settings, tmp_path) -> None:
    path = tmp_path / "frame.parquet"
    synthetic_training_frame(rows=2500, cutoffs=5, seed=21).to_parquet(path)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--frame", str(path), "--family", "lightgbm",
                                 "--trials", "1", "--run-id", "cli-run", "--actor", "carol"])
    assert result.exit_code == 0, result.output
    assert "leaderboard" in result.output and "PROMOTED" in result.output
    assert (settings.reports_dir / "runs" / "cli-run" / "report.html").is_file()

    data = json.loads(runner.invoke(cli, ["status", "--json"]).output)
    promotion = data["events"][-1]
    assert promotion["kind"] == "promotion"
    assert promotion["version"] == data["production"]["version"]
    # the first run ships LightGBM: its gain over the baseline clears the paired bootstrap
    # interval on these rows (tests/unit/test_evaluation_gate.py covers the baseline case)
    assert data["production"]["family"] == "lightgbm"
    assert not promotion["reason"].startswith("baseline promoted"), promotion
    assert {c["family"] for c in data["candidates"]} == {"baseline", "lightgbm"}


def test_forced_promotion_without_reason_is_a_usage_error(settings: Settings) -> None:
    result = CliRunner().invoke(cli, ["train", "--force-promote"])
    assert result.exit_code == 2
    assert "--reason" in result.output
