"""Shadow mode: score a challenger beside the champion on live traffic, answer with the champion.

The challenger is scored off the request path, on the writer thread of a
:class:`~shopflow.serving.jsonl_log.JsonlLog` (the prediction log's machinery): the request
path only buffers the champion's answer; a slow or broken challenger can neither slow
down nor fail a live request (when the buffer is full, shadow work is dropped and
counted). Both predictions go to JSON lines under ``reports_dir/shadow/`` (a new file
each UTC day), user ids as keyed hashes, for the comparison the monitoring part does
later. Files older than ``privacy.retention.logs`` are deleted whenever a new file starts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from shopflow.serving.jsonl_log import JsonlLog, log_files, read_records

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from datetime import timedelta
    from pathlib import Path

    import numpy as np

    from shopflow.serving.served import ServedModel

PREFIX = "shadow"
DAY_SECONDS = 86_400.0


def shadow_dir(reports_dir: Path) -> Path:
    """Where shadow logs live."""
    return reports_dir / "shadow"


class _Answered(NamedTuple):
    at: datetime
    user_ids: list[str]
    champion_version: str
    champion: list[float]
    known: list[bool]
    challenger: ServedModel


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
        self._score_with = score
        self._hash_id = hash_id
        self.log: JsonlLog[_Answered] = JsonlLog(
            directory=directory, prefix=PREFIX, to_records=self._score,
            rotate_seconds=DAY_SECONDS, max_pending=max_pending, keep=keep)
        self.challenger: ServedModel | None = None

    @property
    def logged(self) -> int:
        """Records written."""
        return self.log.written

    @property
    def dropped(self) -> int:
        """Requests not shadow-scored because the buffer was full."""
        return self.log.dropped

    @property
    def failed(self) -> int:
        """Requests whose shadow scoring or writing failed."""
        return self.log.failed

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        self.log.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Finish queued work (bounded by ``timeout``) and stop."""
        self.log.stop(timeout)

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
        self.log.submit(_Answered(datetime.now(UTC), list(user_ids), champion.version,
                                  list(probabilities), list(known), challenger))

    def _score(self, item: _Answered) -> Iterator[dict[str, Any]]:
        scores, _ = self._score_with(item.challenger, item.user_ids)
        at = item.at.isoformat()
        for uid, k, c, s in zip(item.user_ids, item.known, item.champion, scores, strict=True):
            yield {
                "at": at,
                "user": self._hash_id(uid),
                "known_user": bool(k),
                "champion_version": item.champion_version,
                "champion": round(float(c), 6),
                "challenger_version": item.challenger.version,
                "challenger": round(float(s), 6),
            }


def shadow_files(directory: Path) -> list[Path]:
    """The day files of the shadow log in ``directory``, oldest first."""
    return log_files(directory, PREFIX)


def read_shadow_log(reports_dir: Path) -> list[dict[str, Any]]:
    """Every shadow record written so far (oldest file first), for comparisons and tests."""
    return list(read_records(shadow_files(shadow_dir(reports_dir))))
