"""Bentos that carry the winner: ``bentoml build`` for a model version that passed gate 3.

The hot-swap service (``services/shop_service.py`` served from the repository) follows the
ledger's production alias and loads models from ``SHOPFLOW_HOME``. A Bento built here is
a fixed release instead: the same service file, the ``shopflow`` package, the locked
Python dependencies (``requirements.lock``) and the production model (and the production
recommender, when there is one) declared by the service as BentoML models, so that
``bentoml serve <tag>`` (or the image of ``bentoml containerize <tag>``) serves them
without reading a model from ``SHOPFLOW_HOME`` or the ledger; features still come from
the configured online store.

The build folder is staged in a temporary directory: the service module, a copy of the
package (with the code version baked in, there is no git checkout inside a Bento), the
lock file and the pin (:mod:`shopflow.serving.packaged`: the model tags, the digests the
ledger recorded and the ledger metrics the service would otherwise read). ``bentoml
build`` runs as a child process in ``settings.bentoml_home`` (the store that holds the
models), so each build imports the staged service afresh. The Bento's tag is recorded in
the ledger beside the model version (``shopflow status`` shows it).

The pipeline packages after gate 3 passed (:func:`package_after_deploy`); a failure there
is reported, never undoes the deployment.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopflow.contract import RECOMMENDER_MODEL
from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from shopflow.serving.packaged import PinnedModel
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: The lock file installed into the Bento's environment (``bentoml containerize``).
LOCK_FILE = "requirements.lock"
BUILD_TIMEOUT_S = 600.0


class PackagingError(PermanentError, RuntimeError):
    """The Bento could not be built (the message says why; nothing was recorded)."""


@dataclass(frozen=True)
class PackagedBento:
    """A built Bento and what it carries."""

    tag: str
    version: str
    recommender_version: str | None
    path: Path
    size_bytes: int

    def asdict(self) -> dict[str, Any]:
        return {"bento": self.tag, "version": self.version,
                "recommender_version": self.recommender_version, "path": str(self.path),
                "size_bytes": self.size_bytes}


def repository_file(name: str) -> Path:
    """``name`` at the root of the checkout the service folder belongs to."""
    from shopflow.serving.process import services_dir

    return services_dir().parent / name


def _pinned(settings: Settings, version: str, *, model: str) -> PinnedModel:
    """The pin of ``version`` of ``model``: its tag, recorded digests and ledger metrics."""
    from shopflow.ledger import Ledger
    from shopflow.recommend.store import MODEL_NAME as RECOMMENDER_NAME
    from shopflow.registry import MODEL_NAME
    from shopflow.serving.packaged import PinnedModel

    with Ledger(settings.ledger_url) as ledger:
        record = ledger.candidate(version, model=model)
    if record is None:
        raise PackagingError(f"version: {version!r} is not a {model} candidate in the ledger")
    name = RECOMMENDER_NAME if model == RECOMMENDER_MODEL else MODEL_NAME
    return PinnedModel(version=version, tag=f"{name}:{version}", artefacts=record.artefacts,
                       metrics=record.metrics)


def _stage(folder: Path, pin_json: str, *, code_version: str) -> None:
    """Fill the build folder: service module, package copy, lock file, pin."""
    import shopflow
    from shopflow.registry.store import CODE_VERSION_FILE
    from shopflow.serving.packaged import PIN_FILE
    from shopflow.serving.process import SERVICE_MODULE, services_dir

    service = services_dir() / f"{SERVICE_MODULE}.py"
    lock = repository_file(LOCK_FILE)
    for path, key in ((service, "the service module (SHOPFLOW_SERVICES_DIR)"),
                      (lock, f"{LOCK_FILE} beside the services folder")):
        if not path.is_file():
            raise PackagingError(f"cannot package: {key} is missing at {path}")
    shutil.copy2(service, folder / service.name)
    shutil.copy2(lock, folder / LOCK_FILE)
    package = folder / "shopflow"
    shutil.copytree(Path(shopflow.__file__).resolve().parent, package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (package / CODE_VERSION_FILE).write_text(code_version + "\n")
    (folder / PIN_FILE).write_text(pin_json + "\n")
    import yaml

    from shopflow.serving.process import SERVICE_TARGET

    (folder / "bentofile.yaml").write_text(yaml.safe_dump({
        "service": SERVICE_TARGET,
        "labels": {"project": "shopflow", "component": "propensity-service",
                   "packaged": "pinned"},
        "include": [service.name, PIN_FILE, "shopflow/**"],
        "exclude": ["__pycache__", "*.pyc"],
        "python": {"requirements_txt": LOCK_FILE, "lock_packages": False},
        "envs": [{"name": "BENTOML_DO_NOT_TRACK", "value": "True"}],
    }, sort_keys=False))


def _bentoml_build(settings: Settings, folder: Path, *, version: str) -> str:
    """``bentoml build`` of ``folder`` in the model store's home; returns the Bento tag."""
    from shopflow.registry import use_model_store
    from shopflow.serving.process import service_env

    use_model_store(settings)
    program = Path(sys.executable).with_name("bentoml")
    command = [*([str(program)] if program.exists() else [sys.executable, "-m", "bentoml"]),
               "build", str(folder), "-f", str(folder / "bentofile.yaml"), "--output", "tag",
               "--label", f"model_version={version}"]
    env = service_env(settings)
    # the staged package, not the caller's, is what the Bento must import
    env.pop("PYTHONPATH", None)
    try:
        done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                              timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PackagingError(f"bentoml build did not finish within {BUILD_TIMEOUT_S:.0f} s") \
            from exc
    tag = next((line.split("__tag__:", 1)[1].strip() for line in done.stdout.splitlines()
                if "__tag__:" in line), None)
    if done.returncode != 0 or not tag:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
        raise PackagingError(f"bentoml build failed (exit {done.returncode}):\n{tail}")
    return tag


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def package(settings: Settings, *, version: str | None = None,
            record: bool = True) -> PackagedBento:
    """Build the Bento that carries ``version`` (default: the production model).

    The production recommender, when the ledger names one, is packaged beside it.

    Args:
        settings: the ledger, model store and BentoML home.
        version: a propensity version in the ledger; None: the production one.
        record: write the Bento tag beside the version (and the recommender's) in the ledger.

    Raises:
        PackagingError: no production model, an unknown version, a model missing from the
            store, or a failed build.
    """
    from shopflow.ledger import Ledger
    from shopflow.registry import code_version, use_model_store
    from shopflow.serving.packaged import BentoPin

    with Ledger(settings.ledger_url) as ledger:
        if version is None:
            production = ledger.production()
            if production is None:
                raise PackagingError("nothing to package: the ledger names no production model "
                                     "(train and deploy one, or pass --version)")
            version = production.version
        recommender = ledger.production(model=RECOMMENDER_MODEL)
    pin = BentoPin(
        propensity=_pinned(settings, version, model="propensity"),
        recommender=None if recommender is None else _pinned(
            settings, recommender.version, model=RECOMMENDER_MODEL),
        packaged_at=datetime.now(UTC).isoformat(timespec="seconds"),
        code_version=code_version(),
    )
    use_model_store(settings)
    import bentoml
    from bentoml.exceptions import NotFound

    for pinned in (pin.propensity, pin.recommender):
        if pinned is None:
            continue
        try:
            bentoml.models.get(pinned.tag)
        except NotFound as exc:
            raise PackagingError(f"cannot package {pinned.tag}: it is not in the model store "
                                 f"at {settings.bentoml_home / 'models'}") from exc
    with tempfile.TemporaryDirectory(prefix="shopflow-bento-") as staging:
        folder = Path(staging)
        _stage(folder, pin.to_json(), code_version=pin.code_version or "")
        tag = _bentoml_build(settings, folder, version=version)
    bento = bentoml.get(tag)
    path = Path(bento.path)
    packaged = PackagedBento(tag=tag, version=version,
                             recommender_version=pin.recommender.version if pin.recommender
                             else None, path=path, size_bytes=_size(path))
    if record:
        with Ledger(settings.ledger_url) as ledger:
            ledger.record_bento(version, tag)
            if packaged.recommender_version is not None:
                ledger.record_bento(packaged.recommender_version, tag)
    logger.info("packaged %s as Bento %s (%.1f MB)", version, tag, packaged.size_bytes / 1e6)
    return packaged


def package_after_deploy(settings: Settings, version: str) -> dict[str, Any]:
    """Package ``version`` after it passed gate 3; never raises (a deploy stands).

    Returns:
        ``{"bento": tag, ...}`` on success, ``{"bento": None, "error": why}`` on failure
        (logged at ERROR; the run's summary carries it).
    """
    try:
        return package(settings, version=version).asdict()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        logger.error("packaging %s after gate 3 failed (the deployment stands): %s",
                     version, reason)
        return {"bento": None, "version": version, "error": reason}
