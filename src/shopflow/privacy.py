"""Pseudonymous user ids for logs (access log, shadow log).

Logs must not carry raw personal data, yet shadow predictions must later be joined with
matured labels. A keyed hash (HMAC-SHA256 with a random key kept in SHOPFLOW_HOME) does
both: the same id always maps to the same token on this installation, and a token cannot
be reversed by hashing candidate ids without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

_KEY_FILE = "serving/log_id_key"


@lru_cache(maxsize=8)
def _key(home: str) -> bytes:
    path = Path(home) / _KEY_FILE
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
    """Turns user ids into short stable tokens, keyed per SHOPFLOW_HOME."""

    def __init__(self, home: Path) -> None:
        self._key = _key(str(home))

    def __call__(self, user_id: str) -> str:
        digest = hmac.new(self._key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:16]
