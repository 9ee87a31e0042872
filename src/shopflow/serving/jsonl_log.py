"""Append-only, rotated, durable JSON-lines logs written off the request path.

The prediction log and the shadow log share this machinery (one way to write a serving
log): the request path only appends a reference to an in-memory buffer (a ``deque``
append, no lock, no I/O); one background thread wakes every ``flush_interval`` seconds,
turns everything buffered into lines, appends them to the current file, and
``fsync``\\ s it. A file is closed (and a new one begun) when it passes ``max_bytes`` or
when the UTC period of ``rotate_seconds`` it was opened in ends.

Bounded memory: at most ``max_pending`` items wait; past that new items are dropped and
counted (serving never blocks on its log), which ``/metrics`` and ``/metadata`` report.

What a crash can lose: items still buffered (at most one ``flush_interval`` of traffic,
or ``max_pending`` items if the writer fell behind), and on a power cut possibly a torn
last line of the current file (readers skip lines that do not parse). A clean shutdown
(:meth:`JsonlLog.stop`) drains the buffer, flushes and ``fsync``\\ s before returning.

Retention: whenever a new file begins, files of the log last written more than ``keep``
ago are deleted (``privacy.retention.logs``; :func:`shopflow.privacy.expire`).

File names are ``<prefix>-<UTC period start>-<pid>-<n>.jsonl``: sorting by name is
chronological per process, and two processes never append to the same file. Rewriting a
file to erase one shopper (``shopflow forget``: ``remove_user_lines``) swaps
it atomically; the writer notices that its open file was replaced and reopens it before
its next write.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shopflow.privacy import expire

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import timedelta
    from pathlib import Path
    from typing import IO

logger = logging.getLogger(__name__)

T = TypeVar("T")


class JsonlLog(Generic[T]):
    """Buffers items on the request path; a background thread writes them as JSON lines.

    Args:
        directory: folder of the files (created on :meth:`start`).
        prefix: file name prefix (``predictions``, ``shadow``).
        to_records: turns one buffered item into the JSON objects it logs (called on the
            writer thread, so formatting, hashing and serialising stay off requests).
        flush_interval: seconds between writes (the most a crash can lose).
        max_bytes: a file past this size is closed and a new one begun.
        rotate_seconds: a new file at the start of each UTC period of this length.
        max_pending: items buffered before new ones are dropped.
        keep: files last written longer ago than this are deleted when a new file
            begins (``privacy.retention.logs``); None: kept forever.
    """

    def __init__(self, *, directory: Path, prefix: str,
                 to_records: Callable[[T], Iterable[dict[str, Any]]],
                 flush_interval: float = 1.0, max_bytes: int = 64 << 20,
                 rotate_seconds: float = 3600.0, max_pending: int = 10_000,
                 keep: timedelta | None = None) -> None:
        self.directory = directory
        self.prefix = prefix
        self._to_records = to_records
        self.flush_interval = flush_interval
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.max_pending = max_pending
        self.keep = keep
        self._pending: deque[T] = deque()
        # one encoder, not one per json.dumps call with options (a third of the writer's time)
        self._encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._handle: IO[str] | None = None
        self._path: Path | None = None
        self._period: int = -1
        self._sequence = 0
        self.written = 0  # records on disk
        self.dropped = 0  # items refused because the buffer was full
        self.failed = 0  # items lost to a formatting or I/O error
        self.files = 0  # files begun

    # ---- request path --------------------------------------------------------------
    def submit(self, item: T) -> bool:
        """Buffer ``item`` for the writer; never blocks. Returns False (and counts) if full.

        Called from one thread (the worker's event loop); ``deque.append`` is atomic, so the
        writer can drain concurrently without a lock.
        """
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            return False
        self._pending.append(item)
        return True

    @property
    def pending(self) -> int:
        """Items buffered, not yet written."""
        return len(self._pending)

    # ---- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (idempotent)."""
        if self._thread is None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError:  # a read-only home must not stop the service: writes count failed
                logger.exception("%s log: cannot create %s", self.prefix, self.directory)
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=f"shopflow-{self.prefix}-log",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write everything buffered, fsync, close (clean shutdown; bounded by ``timeout``)."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        self._wake.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.error("%s log writer did not finish within %.0f s; %d items unwritten",
                         self.prefix, timeout, len(self._pending))
        self._thread = None

    def flush(self) -> None:
        """Write what is buffered now, from the calling thread (tests, tools; not serving)."""
        self._write_pending()

    def close(self) -> None:
        """Write what is buffered and close the file, without a writer thread (tests, tools)."""
        self._write_pending()
        self._close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._write_pending()
        self._write_pending()
        self._close()

    # ---- writing -------------------------------------------------------------------
    def _write_pending(self) -> None:
        taken: list[T] = []
        pending = self._pending
        while pending:
            taken.append(pending.popleft())
        if not taken:
            return
        lines: list[str] = []
        encode = self._encode
        # Not done: a time.sleep(0) per item to hand the event loop the GIL sooner (measured:
        # +7 µs of CPU a record, no better loop latency).
        for item in taken:
            try:
                lines += [encode(r) for r in self._to_records(item)]  # all of an item or none
            except Exception:  # one bad item must not lose the others
                self.failed += 1
                logger.exception("%s log: could not format an item", self.prefix)
        if not lines:
            return
        try:
            handle = self._file(time.time())
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            self.written += len(lines)
        except Exception:  # a full disk must not kill the writer: count, retry next time
            self.failed += len(taken)
            logger.exception("%s log: could not write %d records", self.prefix, len(lines))
            self._close()

    def _file(self, now: float) -> IO[str]:
        period = int(now // self.rotate_seconds)
        handle, path = self._handle, self._path
        if handle is not None and path is not None:
            replaced = _replaced(handle, path)
            if period != self._period or replaced or handle.tell() >= self.max_bytes:
                self._close()
                if replaced and period == self._period:
                    return self._open(path, period)  # rewritten by an erasure: append on
            else:
                return handle
        self._sequence += 1
        start = datetime.fromtimestamp(period * self.rotate_seconds, UTC)
        name = f"{self.prefix}-{start:%Y%m%dT%H%M%S}-{os.getpid()}-{self._sequence}.jsonl"
        self.files += 1
        expire(log_files(self.directory, self.prefix), self.keep)  # a new file: old ones go
        return self._open(self.directory / name, period)

    def _open(self, path: Path, period: int) -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True)  # also if removed while running
        self._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across writes
        self._path, self._period = path, period
        return self._handle

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.flush()
                os.fsync(handle.fileno())
            except (OSError, ValueError):
                logger.exception("%s log: could not sync %s", self.prefix, self._path)
            finally:
                handle.close()


def _replaced(handle: IO[str], path: Path) -> bool:
    """Whether ``path`` no longer names the open file (erased, or rewritten atomically)."""
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except OSError:
        return True


def log_files(directory: Path, prefix: str) -> list[Path]:
    """The log files of ``prefix`` in ``directory``, oldest first."""
    return sorted(directory.glob(f"{prefix}-*.jsonl"))


def read_records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Every record of ``paths`` in file order, skipping lines that do not parse (a torn
    last line after a crash)."""
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    logger.warning("skipping an unreadable line in %s", path)


def remove_user_lines(path: Path, token: str, *, field: str = "user") -> int:
    """Rewrite one JSON-lines log without the lines whose ``field`` is ``token``."""
    kept: list[str] = []
    removed = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip() and _line_user(line, field) == token:
                removed += 1
            else:
                kept.append(line)
    if removed:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.forget")
        try:
            tmp.write_text("".join(kept), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return removed


def _line_user(line: str, field: str) -> object:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn last line: not the shopper's as far as anyone can tell
    return record.get(field) if isinstance(record, dict) else None
