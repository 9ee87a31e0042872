"""Options shared by every command, so each says ``--config`` the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from shopflow.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    envvar="SHOPFLOW_CONFIG",
    help="YAML run config (docs/DESIGN.md §3). Default: built-in defaults.",
)


def load(config_path: str | None, **overrides: Any) -> Settings:
    """Load settings, turning config errors into a clean CLI error (exit 2, no traceback)."""
    from shopflow.settings import ConfigError, load_settings

    try:
        return load_settings(config_path, **overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
