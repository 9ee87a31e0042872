"""Run params as the CLI and the tasks read them (no Airflow needed for these)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.pipeline.params import (
    MONITORING_PARAMS,
    ROLLBACK_PARAMS,
    TRAINING_PARAMS,
    ParamError,
    parse_param_assignments,
    resolve_params,
    settings_from_params,
)

if TYPE_CHECKING:
    from pathlib import Path


def test_assignments_are_typed() -> None:
    params = parse_param_assignments([
        "force_promote=true", "min_improvement=0.01", "families=xgboost,baseline",
        "horizon=14d", "force_reason=hotfix 42", "dry_run=no", "config=",
    ])
    assert params == {"force_promote": True, "min_improvement": 0.01,
                      "families": ["xgboost", "baseline"], "horizon": "14d",
                      "force_reason": "hotfix 42", "dry_run": False, "config": None}
    assert parse_param_assignments(['families=["torch"]']) == {"families": ["torch"]}


def test_strings_stay_strings_even_when_they_look_like_numbers() -> None:
    assert parse_param_assignments(["force_reason=42"]) == {"force_reason": "42"}


def test_unknown_param_names_every_valid_one() -> None:
    with pytest.raises(ParamError) as err:
        parse_param_assignments(["force=true"])
    message = str(err.value)
    assert "unknown parameter 'force'" in message
    for name in TRAINING_PARAMS:
        assert name in message


def test_malformed_assignment_is_refused() -> None:
    with pytest.raises(ParamError, match="not KEY=VALUE"):
        parse_param_assignments(["force_promote"])


def test_forced_promotion_needs_a_reason() -> None:
    with pytest.raises(ParamError, match="force_reason"):
        resolve_params({"force_promote": True})
    assert resolve_params({"force_promote": True, "force_reason": "why"})["force_promote"]


def test_rollback_needs_a_reason_and_monitoring_has_its_own_table() -> None:
    with pytest.raises(ParamError, match="reason"):
        resolve_params({}, ROLLBACK_PARAMS)
    assert resolve_params({"reason": "bad canary"}, ROLLBACK_PARAMS)["version"] is None
    assert resolve_params({"reason": "bad canary"}, ROLLBACK_PARAMS)["from_version"] is None
    assert resolve_params({}, MONITORING_PARAMS)["auto_rollback"] is True
    with pytest.raises(ParamError, match="unknown parameter"):
        resolve_params({"families": ["xgboost"]}, MONITORING_PARAMS)


def test_params_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("task:\n  horizon: 30d\n  lookback: 60d\ngate:\n  min_improvement: 0.5\n")
    settings = settings_from_params({"config": str(config), "horizon": "7d",
                                     "families": ["xgboost"], "min_improvement": 0.01})
    assert settings.task.horizon == timedelta(days=7)
    assert settings.task.lookback == timedelta(days=60)  # from the file, untouched
    assert settings.training.families == ["xgboost"]
    assert settings.gate.min_improvement == 0.01


def test_cli_rejects_unknown_params_before_starting_airflow() -> None:
    result = CliRunner().invoke(cli, ["pipeline", "run", "--param", "famlies=xgboost"])
    assert result.exit_code == 2
    assert "unknown parameter 'famlies'" in result.output
    assert "families" in result.output and "force_promote" in result.output


def test_cli_rejects_a_force_without_reason() -> None:
    result = CliRunner().invoke(cli, ["pipeline", "run", "--param", "force_promote=true"])
    assert result.exit_code == 2
    assert "force_reason" in result.output


def test_cli_lists_params_and_has_help() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["pipeline", "params"])
    assert listed.exit_code == 0
    for name in TRAINING_PARAMS:
        assert name in listed.output
    for args in (["pipeline", "--help"], ["pipeline", "run", "--help"],
                 ["pipeline", "params", "--help"]):
        shown = runner.invoke(cli, args)
        assert shown.exit_code == 0 and "Usage" in shown.output
    rollback = runner.invoke(cli, ["pipeline", "params", "--dag", "shopflow_rollback"])
    assert "reason" in rollback.output


def test_recommendation_params_parse_and_validate() -> None:
    params = parse_param_assignments(["recommend=false", "recommend_families=lightgbm"])
    assert params == {"recommend": False, "recommend_families": ["lightgbm"]}
    resolved = resolve_params({})
    assert resolved["recommend"] is True and resolved["recommend_families"] is None
    with pytest.raises(ParamError, match="recommend_families must be"):
        resolve_params({"recommend_families": ["xgboost"]})
    with pytest.raises(ParamError, match="recommend_families must be"):
        resolve_params({"recommend_families": []})
