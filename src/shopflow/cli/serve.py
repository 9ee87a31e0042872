"""``shopflow serve [--port 3000]``: the BentoML service for the production model."""

from __future__ import annotations

import os

import click

from shopflow.cli.options import config_option, load


@click.command(name="serve")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="TCP port. Default: serving.port (3000).")
@click.option("--host", default=None,
              help="Bind address. Default: serving.host (127.0.0.1, loopback only).")
@config_option
def serve(port: int | None, host: str | None, config_path: str | None) -> None:
    """Serve the production model over HTTP (POST /predict, GET /healthz /readyz /metadata).

    Runs `bentoml serve` on services/shop_service.py in the foreground; the service
    follows the ledger's production alias and hot-swaps models while it runs. A candidate
    left "deploy pending" by a run without a service is deployed at start, through gate 3
    (serving.deploy_pending_on_start). Stop it with Ctrl+C.
    """
    from shopflow.registry import use_model_store
    from shopflow.serving.process import (
        SERVICE_MODULE,
        address_env,
        serve_command,
        service_env,
        services_dir,
    )

    settings = load(config_path)
    settings.ensure_dirs()
    use_model_store(settings)
    host = host or settings.serving.host
    port = port or settings.serving.port
    if not (services_dir() / f"{SERVICE_MODULE}.py").is_file():
        raise click.ClickException(
            f"service module not found in {services_dir()}; set SHOPFLOW_SERVICES_DIR"
        )
    command = serve_command(host=host, port=port)
    env = service_env(settings, config_path=config_path, extra=address_env(host, port))
    click.echo(f"serving on http://{host}:{port} (SHOPFLOW_HOME={settings.home_dir})", err=True)
    os.execvpe(command[0], command, env)
