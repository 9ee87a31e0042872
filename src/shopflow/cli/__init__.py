"""The ``shopflow`` command line (docs/DESIGN.md §4).

Each command lives in its own module and is imported only when invoked, so ``shopflow
--help`` stays fast and a broken optional component cannot break unrelated commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

# command name -> (module, attribute, one-line help shown by `shopflow --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "generate": ("shopflow.cli.generate", "generate", "Write synthetic raw events."),
    "ingest": ("shopflow.cli.ingest", "ingest", "Load the configured source into raw_events."),
    "transform": ("shopflow.cli.transform", "transform", "Build the dbt warehouse marts."),
    "quality": ("shopflow.cli.quality", "quality", "Run a data-quality gate and print its table."),
    "features": ("shopflow.cli.features", "features", "Feast: apply, materialize, read online."),
    "train": ("shopflow.cli.train", "train", "Train and evaluate candidates, run gate 2."),
    "pipeline": ("shopflow.cli.pipeline", "pipeline", "Run the training DAG through Airflow."),
    "airflow": ("shopflow.cli.airflow", "airflow", "Local Airflow 3: UI, scheduler, service."),
    "serve": ("shopflow.cli.serve", "serve", "Serve the production model over HTTP."),
    "deploy": ("shopflow.cli.deploy", "deploy", "Gate 3 for a deploy-pending (or named) model."),
    "package": ("shopflow.cli.package", "package", "Build a Bento carrying the production model."),
    "status": ("shopflow.cli.status", "status", "What is in production, and the history."),
    "rollback": ("shopflow.cli.rollback", "rollback", "Roll production back to an earlier model."),
    "forget": ("shopflow.cli.forget", "forget", "Erase one shopper from every store."),
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, short_help = COMMANDS[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise

            @click.command(name=cmd_name, help=f"{short_help} (not available in this build)")
            def unavailable() -> None:
                raise click.ClickException(f"'{cmd_name}' is not available in this build")

            unavailable.short_help = short_help
            return unavailable
        command: click.Command = getattr(module, attribute)
        command.short_help = command.short_help or short_help
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="shopflow")
def cli() -> None:
    """Shopflow: raw shop events to served purchase-propensity models.

    Local state lives in SHOPFLOW_HOME (default ./.shopflow). Every command takes its
    settings from --config FILE (or SHOPFLOW_CONFIG), SHOPFLOW_* variables and defaults.
    """


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``shopflow`` script."""
    return cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="shopflow")
