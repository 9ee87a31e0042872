"""Shadow mode: score a challenger beside the champion on live traffic, answer with the champion.

The challenger is scored off the request path, in one background thread fed by a bounded
queue: a slow or broken challenger can neither slow down nor fail a live request (when
the queue is full, shadow work is dropped and counted). Both predictions go to JSON lines
under ``reports_dir/shadow/`` (one file per UTC day), user ids as keyed hashes, for the
comparison the monitoring part does later. Files older than ``privacy.retention.logs``
are deleted whenever a new day's file starts.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow.privacy import expire

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta
    from pathlib import Path

    import numpy as np

    from shopflow.serving.served import ServedModel

logger = logging.getLogger(__name__)

_STOP = object()


def shadow_dir(reports_dir: Path) -> Path:
    """Where shadow logs live."""
    return reports_dir / "shadow"


class ShadowScorer:
    """Scores requests with a challenger in the background and logs both models' answers.

    Args:
        directory: folder of the JSON-lines files.
        score: ``(model, user_ids) -> (probabilities, known)`` (the runtime's scorer).
        hash_id: pseudonymises user ids for the log.
        max_pending: requests waiting for shadow scoring before new ones are dropped.
        keep: how long a day's file is kept (``privacy.retention.logs``); None: forever.
    """

    def __init__(
        self,
        *,
        directory: Path,
        score: Callable[[ServedModel, Sequence[str]], tuple[np.ndarray, np.ndarray]],
        hash_id: Callable[[str], str],
        max_pending: int = 1000,
        keep: timedelta | None = None,
    ) -> None:
        self.directory = directory
        self._keep = keep
        self._score_with = score
        self._hash_id = hash_id
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._thread: threading.Thread | None = None
        self.challenger: ServedModel | None = None
        self.logged = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="shopflow-shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish queued work (bounded by ``timeout``) and stop."""
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None

    def submit(
        self,
        user_ids: Sequence[str],
        champion: ServedModel,
        probabilities: Sequence[float],
        known: Sequence[bool],
    ) -> None:
        """Queue one answered request for challenger scoring; never blocks."""
        challenger = self.challenger
        if challenger is None or challenger.version == champion.version:
            return
        try:
            self._queue.put_nowait(
                (datetime.now(UTC), list(user_ids), champion.version, list(probabilities),
                 list(known), challenger)
            )
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._score(*item)
            except Exception:  # shadow problems are logged, never raised into serving
                self.failed += 1
                logger.exception("shadow scoring failed")

    def _score(
        self,
        at: datetime,
        user_ids: list[str],
        champion_version: str,
        champion: list[float],
        known: list[bool],
        challenger: ServedModel,
    ) -> None:
        scores, _ = self._score_with(challenger, user_ids)
        path = self.directory / f"shadow-{at:%Y%m%d}.jsonl"
        if not path.exists():  # a new day: the old days past retention go
            expire(shadow_files(self.directory), self._keep)
        lines = [
            json.dumps(
                {
                    "at": at.isoformat(),
                    "user": self._hash_id(uid),
                    "known_user": bool(k),
                    "champion_version": champion_version,
                    "champion": round(float(c), 6),
                    "challenger_version": challenger.version,
                    "challenger": round(float(s), 6),
                },
                separators=(",", ":"),
            )
            for uid, k, c, s in zip(user_ids, known, champion, scores, strict=True)
        ]
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        self.logged += len(lines)


def shadow_files(directory: Path) -> list[Path]:
    """The day files of the shadow log in ``directory``, oldest first."""
    return sorted(directory.glob("shadow-*.jsonl"))


def read_shadow_log(reports_dir: Path) -> list[dict[str, Any]]:
    """Every shadow record written so far (oldest file first), for comparisons and tests."""
    records: list[dict[str, Any]] = []
    for path in shadow_files(shadow_dir(reports_dir)):
        with open(path, encoding="utf-8") as handle:
            records.extend(json.loads(line) for line in handle if line.strip())
    return records
