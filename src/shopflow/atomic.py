"""Write state files so that a crash leaves the old file or the new one, never half of one.

Every file under ``SHOPFLOW_HOME`` that a later run or another DAG reads back (run
records, candidates, evaluation and gate outcomes, deployment watermarks, monitoring
references, published snapshots) goes through here: the bytes are written to a temporary
file in the *same folder* (so the rename cannot cross file systems), flushed and fsynced,
then ``os.replace``-d over the target, and the folder is fsynced so the rename itself
survives a power cut. A process killed at any instant leaves at most a stray
``.<name>.*.tmp`` file, which no reader looks at.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A unique temporary name next to ``path`` (hidden, ends in ``.tmp``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (folders: best effort, some file systems refuse)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    For writers that want a file name (``to_parquet``, ``pq.write_table``, ``COPY``). On
    an exception the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        handle.write(data)
    return path


def write_text(path: Path, text: str) -> Path:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, *, indent: int | None = None) -> Path:
    """Atomically replace ``path`` with ``data`` as JSON (non-JSON values as ``str``)."""
    return write_text(path, json.dumps(data, indent=indent, default=str))
