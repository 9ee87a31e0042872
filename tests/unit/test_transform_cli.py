"""``shopflow transform`` wiring that needs no dbt run (runs are in tests/integration)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from shopflow.cli import cli

if TYPE_CHECKING:
    from pathlib import Path


def test_help_names_every_option() -> None:
    result = CliRunner().invoke(cli, ["transform", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--config", "--select", "--full-refresh"):
        assert option in result.output


def test_a_missing_config_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["transform", "--config", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "config file not found" in result.output
