"""The pin of a packaged service: which model versions a Bento carries, and their facts.

A Bento built by ``shopflow package`` (:mod:`shopflow.serving.bento`) serves the models it
carries instead of following the ledger's production alias. Its build folder holds
:data:`PIN_FILE` beside ``shop_service.py``: the propensity model (and the production
recommender, when there is one) by BentoML tag, with what the hot-swap service would
otherwise read from the ledger at load time: the recorded file digests (checked before
anything is unpickled) and the ledger metrics (they can give the cold-start probability),
so that the packaged service gives the hot-swap service's answers without a ledger.

The service reads the pin when its module is imported, because BentoML collects the
models a service declares (``bentoml.models.BentoModel``) from its class body; with no
pin file (the repository's ``services/``) the service follows the ledger as before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

#: The pin's file name, beside the service module in a Bento's build folder.
PIN_FILE = "shopflow_bento.json"
PIN_FORMAT = 1


class PinError(ValueError):
    """A pin file is unreadable or lacks a field (the message names it)."""


@dataclass(frozen=True)
class PinnedModel:
    """One model a Bento carries.

    Attributes:
        version: the ledger version (the BentoML tag's version).
        tag: the BentoML model tag (``shopflow-propensity:<version>``).
        artefacts: file -> sha256 the ledger recorded at registration (empty: unverified).
        metrics: the ledger's metrics of the version at packaging time.
        directory: the model's folder, known once the service resolved its BentoModel.
        metadata: the BentoML model's metadata, known with ``directory``.
    """

    version: str
    tag: str
    artefacts: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def resolved(self, model: Any) -> PinnedModel:
        """This pin with the folder and metadata of ``model`` (a resolved BentoML model)."""
        return replace(self, directory=Path(model.path), metadata=dict(model.info.metadata or {}))

    def folder(self) -> Path:
        """The model's folder (raises if the service has not resolved it)."""
        if self.directory is None:
            raise PinError(f"pinned model {self.tag} was not resolved to a folder")
        return self.directory


@dataclass(frozen=True)
class BentoPin:
    """What a packaged service serves: a propensity model and, optionally, a recommender."""

    propensity: PinnedModel
    recommender: PinnedModel | None = None
    packaged_at: str | None = None
    code_version: str | None = None

    def to_json(self) -> str:
        def plain(model: PinnedModel | None) -> dict[str, Any] | None:
            if model is None:
                return None
            data = asdict(model)
            data.pop("directory")
            data.pop("metadata")
            return data

        return json.dumps({"format": PIN_FORMAT, "propensity": plain(self.propensity),
                           "recommender": plain(self.recommender),
                           "packaged_at": self.packaged_at, "code_version": self.code_version},
                          indent=2, sort_keys=True)


def _model(data: Any, where: str) -> PinnedModel:
    if not isinstance(data, dict):
        raise PinError(f"{where}: must be an object with version and tag")
    for key in ("version", "tag"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise PinError(f"{where}.{key}: must be a non-empty string")
    return PinnedModel(version=data["version"], tag=data["tag"],
                       artefacts=dict(data.get("artefacts") or {}),
                       metrics=dict(data.get("metrics") or {}))


def read_pin(folder: Path) -> BentoPin | None:
    """The pin in ``folder`` (a Bento's service folder), or None when there is none.

    Raises:
        PinError: the file exists but is not a valid pin (names the field).
    """
    path = Path(folder) / PIN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PinError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PinError(f"{path}: must hold a JSON object")
    recommender = data.get("recommender")
    return BentoPin(
        propensity=_model(data.get("propensity"), f"{path}: propensity"),
        recommender=None if recommender is None else _model(recommender,
                                                             f"{path}: recommender"),
        packaged_at=data.get("packaged_at"),
        code_version=data.get("code_version"),
    )


def write_pin(folder: Path, pin: BentoPin) -> Path:
    """Write ``pin`` into ``folder`` (the Bento's build folder); returns the file."""
    from shopflow.atomic import write_text

    return write_text(Path(folder) / PIN_FILE, pin.to_json() + "\n")
