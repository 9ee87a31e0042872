"""Erase one shopper from every store Shopflow keeps (``shopflow forget USER_ID``).

:func:`forget` runs the remover of every store in :data:`~shopflow.forget.stores.USER_STORES`
and appends what was removed where to ``SHOPFLOW_HOME/privacy/forget.jsonl``. The record
names the shopper by pseudonym (:class:`shopflow.privacy.IdHasher`) only: keeping the raw
id to prove it was erased would keep the very data being erased. Running it again is safe
(it removes nothing more and records that).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopflow.forget.stores import USER_STORES, Shopper, UserStore
from shopflow.privacy import id_hasher

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shopflow.settings import Settings

__all__ = ["USER_STORES", "ForgetResult", "Shopper", "UserStore", "forget", "forget_log"]

logger = logging.getLogger(__name__)


@dataclass
class ForgetResult:
    """What one ``forget`` removed.

    Attributes:
        user: the shopper's pseudonym.
        at: when (ISO, UTC).
        removed: store name -> {location: rows removed}.
        record_path: the forget log the record was appended to.
    """

    user: str
    at: str
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    record_path: Path | None = None

    @property
    def total(self) -> int:
        return sum(sum(places.values()) for places in self.removed.values())

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "user": self.user, "total": self.total, "removed": self.removed}

    def summary(self) -> str:
        """Lines for the terminal: a headline, then each store and location that held rows."""
        lines = [f"forgot user {self.user} (pseudonym): {self.total} row(s) removed"]
        for store, places in self.removed.items():
            held = {place: n for place, n in places.items() if n}
            lines.append(f"  {store}: {sum(held.values())}")
            lines += [f"    {place}: {n}" for place, n in held.items()]
        if self.record_path is not None:
            lines.append(f"  record: {self.record_path}")
        return "\n".join(lines)


def forget_log(settings: Settings) -> Path:
    """The append-only record of every erasure (pseudonyms and counts only)."""
    return settings.privacy_dir / "forget.jsonl"


def forget(settings: Settings, user_id: str,
           stores: Sequence[UserStore] | None = None) -> ForgetResult:
    """Remove ``user_id``'s rows from every store, then record what went where.

    A store that fails stops the erasure with its error (after the stores before it were
    cleaned); running ``forget`` again finishes the job, since every remover is idempotent.
    """
    shopper = Shopper(user_id=user_id, token=id_hasher(settings)(user_id))
    result = ForgetResult(user=shopper.token,
                          at=datetime.now(UTC).isoformat(timespec="seconds"))
    for store in USER_STORES if stores is None else stores:
        result.removed[store.name] = store.remove(settings, shopper)
        logger.info("forget %s: %s removed %d row(s)", shopper.token, store.name,
                    sum(result.removed[store.name].values()))
    path = forget_log(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(result.to_dict(), sort_keys=True) + "\n")
    result.record_path = path
    return result
