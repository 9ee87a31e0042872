"""Pseudonymous user ids, and how long files that carry them are kept.

Nothing a person or a log reads should carry a raw shopper id: gate messages, the ledger,
reports, the access, shadow and prediction logs, and the record ``shopflow forget`` keeps.
Yet a pseudonym must stay joinable (shadow predictions with matured labels, a forget
request with the log lines it must remove). A keyed hash does both: HMAC-SHA256 with a
random key kept in SHOPFLOW_HOME maps an id to the same token on this installation, and
nobody without the key can reverse a token by hashing candidate ids. :class:`IdHasher` is
the one pseudonymization of the package; everything else calls it.

Retention (``privacy.retention``, docs/DESIGN.md §3) is enforced by the writers of dated
files through :func:`expire`, so an expired log or quarantined batch goes away without a
scheduler.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import timedelta

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

#: Where the key lives under SHOPFLOW_HOME. It predates the package-wide use (the service
#: created it for its logs); kept there so the tokens already written stay joinable.
KEY_FILE = "serving/log_id_key"
#: Columns that hold a shopper id wherever rows are kept or checked.
USER_COLUMNS = frozenset({"user_id"})


@lru_cache(maxsize=8)
def _key(home: str) -> bytes:
    path = Path(home) / KEY_FILE
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(key)
    try:
        os.link(tmp, path)  # atomic create: the first process to get here wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


class IdHasher:
    """Turns user ids into short stable tokens (16 hex digits), keyed per SHOPFLOW_HOME."""

    def __init__(self, home: Path) -> None:
        self._key = _key(str(home))

    def __call__(self, user_id: str) -> str:
        digest = hmac.new(self._key, str(user_id).encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:16]

    def value(self, value: Any) -> Any:
        """``value`` (an id as read from data) pseudonymized as text; a null stays null.

        A mapping (the key columns of one row, as GX reports a compound key) keeps its
        other columns and has its user-id columns pseudonymized.
        """
        if value is None or (isinstance(value, float) and value != value):
            return value
        if isinstance(value, dict):
            return {k: self.value(v) if k in USER_COLUMNS else v for k, v in value.items()}
        return self(str(value))


def id_hasher(settings: Settings) -> IdHasher:
    """The installation's pseudonymizer (key in ``settings.home_dir``)."""
    return IdHasher(settings.home_dir)


def expire(paths: Iterable[Path], keep: timedelta | None, *, now: float | None = None) -> int:
    """Delete the files or folders among ``paths`` last modified more than ``keep`` ago.

    ``keep`` None keeps everything. Returns how many were deleted; one that cannot be
    deleted is logged and skipped (retention must never fail the writer that enforces it).
    """
    if keep is None:
        return 0
    cutoff = (time.time() if now is None else now) - keep.total_seconds()
    removed = 0
    for path in paths:
        try:
            if path.stat().st_mtime >= cutoff:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
        except OSError as exc:
            logger.warning("retention: could not delete %s: %s", path, exc)
    if removed:
        logger.info("retention: deleted %d item(s) older than %s", removed, keep)
    return removed
