"""A/B test of ``/predict``: which arm a shopper is in, and the challenger that answers it.

The split is sticky and stateless: a shopper is in the challenger arm when the keyed hash
``blake2b(user id, key=salt)``, read as a number in [0, 1), is below
``serving.experiment.share``. Every worker and every restart puts the same shopper in the
same arm without sharing any state, and a new salt reshuffles shoppers for a new test.
The arms are compared on matured labels by :mod:`shopflow.monitoring.experiment`.

:class:`RunningExperiment` is what the request path reads, once per request, from
``ServingRuntime.experiment`` (None while no test runs: then ``/predict`` does exactly
what it does without experiments). The runtime builds it after loading and checking the
challenger like any model it serves, and drops it when the test is paused (a candidate is
deploy pending), ended (the ledger holds its decision) or the challenger is unusable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shopflow.serving.served import ServedModel

CHAMPION = "champion"
CHALLENGER = "challenger"
ARMS = (CHAMPION, CHALLENGER)
#: The ledger's ``details.stage`` of an experiment's decision (promotion or rejection).
EXPERIMENT_STAGE = "experiment"
_SCALE = float(1 << 64)


def salt_key(salt: str) -> bytes:
    """The blake2b key for ``salt`` (a longer salt is hashed down to the 64-byte limit)."""
    raw = salt.encode()
    return raw if len(raw) <= 64 else hashlib.blake2b(raw).digest()


def arm_position(key: bytes, user_id: str) -> float:
    """Where ``user_id`` falls in [0, 1) for the salt ``key`` (uniform, sticky)."""
    digest = hashlib.blake2b(user_id.encode(), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assign_arm(salt: str, user_id: str, share: float) -> str:
    """The arm of ``user_id``: :data:`CHALLENGER` below ``share``, else :data:`CHAMPION`."""
    return CHALLENGER if arm_position(salt_key(salt), user_id) < share else CHAMPION


@dataclass(frozen=True)
class RunningExperiment:
    """A running A/B test as the request path sees it (replaced whole, never mutated).

    Attributes:
        challenger: the checked challenger model answering the challenger arm.
        share: fraction of shoppers in the challenger arm.
        key: the salt as a blake2b key.
    """

    challenger: ServedModel
    share: float
    key: bytes

    def challenger_rows(self, user_ids: Sequence[str]) -> list[int]:
        """Positions in ``user_ids`` of the shoppers in the challenger arm."""
        key, share = self.key, self.share
        return [i for i, uid in enumerate(user_ids) if arm_position(key, uid) < share]
