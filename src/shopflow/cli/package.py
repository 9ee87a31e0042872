"""``shopflow package [--version VERSION]``: a Bento that carries a model (``bentoml build``).

The pipeline packages each model that passes gate 3 (``serving.package``); this builds one
on demand: the production model by default, or a named version. The Bento serves the
model (and the production recommender) it carries with ``bentoml serve <tag>``, or as
the image of ``bentoml containerize <tag>``, without reading a model from SHOPFLOW_HOME.
"""

from __future__ import annotations

import json

import click

from shopflow.cli.options import config_option, load


@click.command(name="package")
@click.option("--version", "version", default=None, metavar="VERSION",
              help="Package this propensity model version. Default: the production model.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@config_option
def package(version: str | None, as_json: bool, config_path: str | None) -> None:
    """Build a Bento carrying the model (and the production recommender); record its tag
    in the ledger beside the version (``shopflow status`` shows it)."""
    from shopflow.serving.bento import PackagingError
    from shopflow.serving.bento import package as build

    settings = load(config_path)
    try:
        packaged = build(settings, version=version)
    except PackagingError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(packaged.asdict(), indent=2))
        return
    carried = packaged.version + (f" + recommender {packaged.recommender_version}"
                                  if packaged.recommender_version else "")
    click.echo(f"Bento {packaged.tag}: {carried} ({packaged.size_bytes / 1e6:.1f} MB, "
               f"{packaged.path})")
    click.echo(f"serve it:        BENTOML_HOME={settings.bentoml_home} bentoml serve "
               f"{packaged.tag}")
    click.echo(f"build an image:  BENTOML_HOME={settings.bentoml_home} bentoml containerize "
               f"{packaged.tag}")
