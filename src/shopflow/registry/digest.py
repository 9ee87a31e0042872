"""Verified models: the ledger keeps a sha256 of every stored model file, checked before use.

Models are pickles, and unpickling runs code: a file changed on the model volume would run
in whatever process loads it (the service, the training and monitoring workers). So when a
model is registered, :func:`artefact_digests` hashes the files of its store directory and
the ledger records them with the candidate (``shopflow_candidates.artefacts``); before any
of them is unpickled or read, :func:`verify_artefacts` hashes them again and compares. A
mismatch is refused (:class:`ArtefactMismatch`), recorded in the ledger as a ``rejection``
event with ``details.gate = "integrity"``, and logged at ERROR. The ledger, not the model
volume, is the root of trust: the digests live in the database.

Models registered before digests existed have none in the ledger: they load with a
warning ("unverified"), so an upgrade does not take the production model down.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: BentoML's own description of the stored model (rewritten by BentoML, never unpickled).
IGNORED_FILES = frozenset({"model.yaml"})


class ArtefactMismatch(PermanentError, ValueError):
    """A stored model file differs from the digest the ledger recorded at registration."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artefact_digests(directory: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under a stored model's directory."""
    root = Path(directory)
    return {
        path.relative_to(root).as_posix(): file_sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() not in IGNORED_FILES
    }


def recorded_digests(settings: Settings, version: str) -> dict[str, str] | None:
    """The digests the ledger recorded for ``version``; None when it recorded none."""
    from shopflow.ledger import Ledger

    with Ledger(settings.ledger_url) as ledger:
        candidate = ledger.candidate(version)
    if candidate is None or not candidate.artefacts:
        return None
    return dict(candidate.artefacts)


def verify_artefacts(settings: Settings, version: str, directory: Path, *, model: str,
                     files: tuple[str, ...] | None = None) -> bool:
    """Check ``version``'s stored files against the ledger before they are loaded.

    Args:
        model: the ledger model name (``propensity`` or the recommender's), for the event.
        files: only these recorded files (e.g. ``("compiled.pkl",)``); None: every one.

    Returns:
        True when verified, False when the ledger has no digests for it (a model registered
        before digests existed: loaded unverified, with a warning).

    Raises:
        ArtefactMismatch: a recorded file is missing or differs; the refusal is recorded
            in the ledger as a ``rejection`` event (``details.gate == "integrity"``).
    """
    expected = recorded_digests(settings, version)
    if expected is None:
        logger.warning("model %s has no artefact digests in the ledger: loaded unverified "
                       "(registered before digests were recorded)", version)
        return False
    mismatched = mismatched_files(directory, expected, files)
    if mismatched:
        _refuse(settings, version, model=model, mismatched=mismatched)
    return True


def mismatched_files(directory: Path, expected: Mapping[str, str],
                     files: tuple[str, ...] | None = None) -> dict[str, dict[str, str | None]]:
    """``name -> {"expected", "actual"}`` for each of ``expected``'s files (only ``files``
    when given) that is missing under ``directory`` or has another sha256."""
    root = Path(directory)
    wanted = expected if files is None else {k: v for k, v in expected.items() if k in files}
    mismatched: dict[str, dict[str, str | None]] = {}
    for name, digest in wanted.items():
        path = root / name
        actual = file_sha256(path) if path.is_file() else None
        if actual != digest:
            mismatched[name] = {"expected": digest, "actual": actual}
    return mismatched


def verify_packaged(version: str, directory: Path, expected: Mapping[str, str], *,
                    files: tuple[str, ...] | None = None) -> bool:
    """Check a packaged model's files against the digests its Bento carries.

    A Bento serves without the ledger, so the digests the ledger recorded travel in the
    Bento's pin (:mod:`shopflow.serving.packaged`); a mismatch is refused the same way,
    without a ledger event to write.

    Returns:
        False when the pin carries no digests (a model registered before digests existed).

    Raises:
        ArtefactMismatch: a file is missing or differs.
    """
    if not expected:
        logger.warning("packaged model %s has no artefact digests: loaded unverified", version)
        return False
    mismatched = mismatched_files(directory, expected, files)
    if mismatched:
        names = ", ".join(sorted(mismatched))
        reason = (f"refused: packaged file(s) {names} of {version} differ from the sha256 "
                  "the ledger recorded at registration (changed inside the Bento?)")
        logger.error("INTEGRITY: %s", reason)
        raise ArtefactMismatch(reason)
    return True


def _refuse(settings: Settings, version: str, *, model: str,
            mismatched: Mapping[str, dict[str, str | None]]) -> None:
    from shopflow.ledger import Ledger

    names = ", ".join(sorted(mismatched))
    reason = (f"refused: stored file(s) {names} of {version} differ from the sha256 the "
              "ledger recorded at registration (changed on the model volume?)")
    logger.error("INTEGRITY: %s", reason)
    try:
        with Ledger(settings.ledger_url) as ledger:
            ledger.record_event(kind="rejection", version=version, reason=reason,
                                details={"gate": "integrity", "files": dict(mismatched)},
                                model=model)
    except Exception:  # the refusal stands even if it cannot be recorded
        logger.exception("could not record the integrity refusal of %s", version)
    from shopflow.alerts import send_alert

    send_alert(settings, "integrity", f"{model} {version} {reason}",
               {"version": version, "model": model, "files": dict(mismatched)})
    raise ArtefactMismatch(reason)
