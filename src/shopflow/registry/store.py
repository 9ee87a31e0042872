"""Models in the BentoML model store under ``settings.bentoml_home``.

Every model is saved with BentoML 1.4's ``bentoml.models.create`` context manager as
``shopflow-propensity:<version>``; the pickled :class:`PropensityModel` is the file
``model.pkl`` in the model's folder. The tag's version is the model version everywhere
(ledger, responses, reports). Beside it, ``compiled.pkl`` holds the model's compiled
predictor when registration produced one (``shopflow.training.compiled``; metadata
``compiled`` says how it was checked, or why there is none).
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from shopflow.internals import bentoml_use_home

if TYPE_CHECKING:
    from datetime import datetime

    from shopflow.settings import Settings
    from shopflow.training.model import PropensityModel

logger = logging.getLogger(__name__)

MODEL_NAME = "shopflow-propensity"
MODEL_FILE = "model.pkl"
COMPILED_FILE = "compiled.pkl"


class ModelLoadError(RuntimeError):
    """A model version is missing from the store or its file cannot be unpickled."""


@runtime_checkable
class _ScoringModel(Protocol):
    """What a stored propensity model must offer to be scored and served.

    The registry sits downstream of training, so it checks the unpickled object by what
    it can do rather than importing ``training.model`` (which would close an import cycle
    with training, which saves through the registry).
    """

    family: str
    feature_names: list[str]
    feature_service: str

    def predict_proba(self, frame: Any) -> Any: ...

    def matrix(self, frame: Any) -> Any: ...


@dataclass(frozen=True)
class StoredModel:
    """A model in the store, without loading its pickle."""

    version: str
    tag: str
    labels: dict[str, str]
    metadata: dict[str, Any]
    created_at: datetime
    path: Path


def use_model_store(settings: Settings) -> Path:
    """Point BentoML at ``settings.bentoml_home`` (and keep it from phoning home).

    BentoML caches its home and stores in process-wide singletons; setting only
    ``BENTOML_HOME`` after the first use would silently keep the old store. This sets the
    variable (for subprocesses such as ``bentoml serve``) and overrides the singletons
    (:func:`shopflow.internals.bentoml_use_home`, which relies on ``bentoml._internal``), so
    it is safe to call before every store access, also when the home changes in-process.

    Returns:
        The store's home folder.
    """
    home = settings.bentoml_home
    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    bentoml_use_home(home)
    return home


#: Written by the image build (docker/Dockerfile) where there is no git checkout.
CODE_VERSION_FILE = "_code_version"


def code_version() -> str:
    """The git commit of the code (short sha, ``+dirty`` if modified).

    Without a git checkout (the Docker image), the commit the image was built from, as
    the build wrote it beside the package; else the package version.
    """
    import shopflow

    here = Path(shopflow.__file__).resolve().parent
    baked = here / CODE_VERSION_FILE

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True,
                              timeout=5, check=True).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        built = baked.read_text().strip() if baked.is_file() else ""
        return built or f"shopflow-{shopflow.__version__}"
    return f"{sha}+dirty" if dirty else sha or f"shopflow-{shopflow.__version__}"


def metadata_value(value: Any) -> Any:
    """BentoML metadata accepts basic types only and no None: drop Nones, stringify rest."""
    from shopflow.jsonable import jsonable

    value = jsonable(value)
    if isinstance(value, dict):
        return {k: metadata_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [metadata_value(v) for v in value if v is not None]
    return value


def save_model(settings: Settings, model: PropensityModel, *, metadata: dict[str, Any],
               compiled: Any = None) -> str:
    """Save ``model`` to the store; returns its new version (the BentoML tag's version).

    Args:
        settings: gives the store's location.
        model: the trained model.
        metadata: metrics, hyperparameters, data window and fingerprint, config hash, run
            id... (``family``, ``feature_service``, ``feature_names`` and ``code_version``
            are added when missing).
        compiled: the model's checked compiled predictor, stored as ``compiled.pkl``
            (the registry only stores it: training compiles and checks it).
    """
    use_model_store(settings)
    import bentoml

    meta = {
        "family": model.family,
        "feature_service": model.feature_service,
        "feature_names": list(model.feature_names),
        "params": dict(model.params),
        "trained_at": model.trained_at.isoformat(),
        "code_version": code_version(),
        **metadata,
    }
    meta = metadata_value(meta)
    labels = {
        "family": model.family,
        "feature_service": model.feature_service,
        "run_id": str(metadata.get("run_id") or "")[:63],
    }
    with bentoml.models.create(MODEL_NAME, metadata=meta, labels=labels) as ref:
        with open(ref.path_of(MODEL_FILE), "wb") as handle:
            pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        if compiled is not None:
            with open(ref.path_of(COMPILED_FILE), "wb") as handle:
                pickle.dump(compiled, handle, protocol=pickle.HIGHEST_PROTOCOL)
        version = str(ref.tag.version)
    logger.info("saved %s model as %s:%s", model.family, MODEL_NAME, version)
    return version


def get_ref(settings: Settings, name: str, version: str, *,
            error: type[Exception] = ModelLoadError, what: str = "model") -> Any:
    """The BentoML model ``name:version`` in this home's store, or ``error`` saying where."""
    use_model_store(settings)
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(f"{name}:{version}")
    except NotFound as exc:
        raise error(
            f"{what} {name}:{version} is not in the model store at "
            f"{settings.bentoml_home / 'models'}"
        ) from exc


def _get(settings: Settings, version: str) -> Any:
    return get_ref(settings, MODEL_NAME, version)


class ModelTampered(ModelLoadError):
    """A stored file differs from the sha256 the ledger recorded (refused, not unpickled)."""


def model_digests(settings: Settings, version: str) -> dict[str, str]:
    """``file -> sha256`` of a stored version's files, for the ledger at registration."""
    from shopflow.registry.digest import artefact_digests

    return artefact_digests(Path(_get(settings, version).path))


def _verified(settings: Settings, version: str, ref: Any, name: str) -> None:
    """Check ``name`` of ``version`` against the ledger's digest before it is unpickled."""
    from shopflow.contract import PROPENSITY_MODEL
    from shopflow.registry.digest import ArtefactMismatch, verify_artefacts

    try:
        verify_artefacts(settings, version, Path(ref.path), model=PROPENSITY_MODEL,
                         files=(name,))
    except ArtefactMismatch as exc:
        raise ModelTampered(str(exc)) from exc


def model_info(settings: Settings, version: str) -> StoredModel:
    """Labels and metadata of a stored version, without unpickling it."""
    return _stored(_get(settings, version))


def load_model(settings: Settings, version: str) -> PropensityModel:
    """Load a stored model and check that it is one.

    Raises:
        ModelTampered: its file differs from the digest the ledger recorded.
        ModelLoadError: the version is not in the store, its file is missing or corrupt,
            or it does not hold a PropensityModel.
    """
    ref = _get(settings, version)
    path = Path(ref.path_of(MODEL_FILE))
    if not path.is_file():
        raise ModelLoadError(f"model {MODEL_NAME}:{version} has no {MODEL_FILE} at {path}")
    _verified(settings, version, ref, MODEL_FILE)
    return read_model_file(path, version)


def read_model_file(path: Path, version: str) -> PropensityModel:
    """The propensity model pickled at ``path`` (verify its digest first).

    Raises:
        ModelLoadError: the file is missing, corrupt, or holds no PropensityModel.
    """
    if not path.is_file():
        raise ModelLoadError(f"model {MODEL_NAME}:{version} has no {MODEL_FILE} at {path}")
    model = _unpickle(path, f"model {MODEL_NAME}:{version}")
    if not isinstance(model, _ScoringModel):
        raise ModelLoadError(
            f"model {MODEL_NAME}:{version} holds a {type(model).__name__}, not a PropensityModel"
        )
    return cast("PropensityModel", model)


def _unpickle(path: Path, what: str) -> Any:
    """The object pickled at ``path``; a :class:`ModelLoadError` naming ``what`` if not."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception as exc:  # unpickling raises nearly anything on corrupt bytes
        raise ModelLoadError(
            f"{what} could not be loaded from {path}: {type(exc).__name__}: {exc}"
        ) from exc


def load_compiled(settings: Settings, version: str) -> Any | None:
    """The compiled predictor stored beside ``version``, or None when it has none.

    Raises:
        ModelLoadError: the version is not in the store, or its ``compiled.pkl`` cannot
            be unpickled (the caller serves the library predictor and says why).
    """
    ref = _get(settings, version)
    path = Path(ref.path_of(COMPILED_FILE))
    if not path.is_file():
        return None
    _verified(settings, version, ref, COMPILED_FILE)
    return read_compiled_file(path, version)


def read_compiled_file(path: Path, version: str) -> Any:
    """The compiled predictor pickled at ``path`` (verify its digest first).

    Raises:
        ModelLoadError: it cannot be unpickled or is not a predictor.
    """
    compiled = _unpickle(path, f"compiled predictor of {MODEL_NAME}:{version}")
    if not callable(getattr(compiled, "predict", None)):
        raise ModelLoadError(f"{path} holds a {type(compiled).__name__}, not a predictor")
    return compiled


def list_models(settings: Settings) -> list[StoredModel]:
    """Every stored Shopflow model, newest first."""
    use_model_store(settings)
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        refs = bentoml.models.list(MODEL_NAME)
    except NotFound:
        return []
    stored = [_stored(ref) for ref in refs]
    return sorted(stored, key=lambda m: m.created_at, reverse=True)


def _stored(ref: Any) -> StoredModel:
    info = ref.info
    return StoredModel(
        version=str(ref.tag.version),
        tag=str(ref.tag),
        labels=dict(info.labels or {}),
        metadata=dict(info.metadata or {}),
        created_at=info.creation_time,
        path=Path(ref.path),
    )
