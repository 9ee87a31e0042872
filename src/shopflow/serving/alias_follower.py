"""Following a ledger production alias: poll, load, check, swap, or refuse and record.

The service serves two kinds of model, the propensity model (``POST /predict``) and the
recommender (``POST /recommend``), and both must change the same way when the ledger's
production alias for them moves: the new version is loaded *beside* the current one,
proven with golden requests, and only then swapped in by one reference assignment, so a
request that has picked up a model keeps it and never sees half a swap. A version that
fails is refused: the old one keeps serving, the refusal is kept for ``/metadata`` and
written to the ledger as a ``rejection`` with ``details.stage = "serving"`` (gate 3 rolls
back on it), and the version is not retried while the alias stays on it.

A deploy-pending ``candidate`` (gate 2 promoted it, gate 3 has not passed it yet) is
followed in preference to ``production``: the service loads, checks and serves it so gate 3
can measure it, and goes back to production when gate 3 drops it (or production moves to
it when gate 3 accepts it). A refused candidate is not followed.

:class:`AliasFollower` is that procedure once. A subclass says only what differs per
kind: how to load a version (:meth:`AliasFollower._load`), how to prove it can serve
(:meth:`AliasFollower._check`), and how to name it in the log; its hooks add what is
specific (the propensity model's shadow challenger, the recommender's popularity
fallback while its alias is empty).

A *packaged* follower (the service inside a Bento, :mod:`shopflow.serving.packaged`)
follows no alias: its target is the version the Bento carries (or none), loaded and
checked by the same procedure once, and never swapped; it never opens the ledger, so a
refusal is logged and kept for ``/metadata`` only.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

#: The ledger actor of refusals written by the service.
SERVING_ACTOR = "shopflow-serving"

M = TypeVar("M")


class ModelRefused(RuntimeError):
    """A model cannot serve: it does not load, its features are not online, or it misbehaves.

    The message is the refusal's reason as is; any other exception during a swap is a
    refusal too, its reason prefixed with the exception's type.
    """


@dataclass
class Refusal:
    """A production version this process would not serve, and why."""

    version: str
    reason: str
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def asdict(self) -> dict[str, str]:
        return {"version": self.version, "reason": self.reason, "at": self.at}


def refusal_reason(exc: BaseException) -> str:
    """The reason recorded for a swap that failed with ``exc``."""
    return str(exc) if isinstance(exc, ModelRefused) else f"{type(exc).__name__}: {exc}"


class AliasFollower(ABC, Generic[M]):
    """Holds the served model of one kind and follows that kind's production alias.

    Subclasses set :attr:`kind` (the ledger's ``model`` value) and :attr:`label` (how log
    lines name it), and implement :meth:`_load`, :meth:`_check` and :meth:`_version_of`.

    Attributes:
        current: the model being served (None: nothing yet). Requests read it once.
        alias_version: the version the alias named at the last successful poll.
        refusals: the latest refused versions, newest last.
        refused: how many refusals in all (``/metrics``).
        swaps: how many swaps succeeded.
        last_poll_error: why the last poll could not read the ledger (None: it could).
    """

    kind: ClassVar[str]
    label: ClassVar[str]

    def __init__(self, ledger_url: str, *, packaged: bool = False,
                 pinned_version: str | None = None) -> None:
        from shopflow.ledger import Ledger

        self.current: M | None = None
        self.alias_version: str | None = None
        self.refusals: deque[Refusal] = deque(maxlen=20)
        self.refused = 0
        self.swaps = 0
        self.last_poll_error: str | None = None
        self._ledger = Ledger(ledger_url, model=self.kind)
        self._refused_target: str | None = None
        self._lock = threading.Lock()  # one poll at a time (poller thread vs. explicit calls)
        self.packaged = packaged
        self._pinned_version = pinned_version
        self._log = logging.getLogger(type(self).__module__)

    # ---- what differs per kind ---------------------------------------------------------
    @abstractmethod
    def _load(self, version: str) -> M:
        """Load ``version`` (raise to refuse it)."""

    @abstractmethod
    def _check(self, candidate: M) -> M:
        """Prove ``candidate`` can serve (raise to refuse it); return the model to serve."""

    @abstractmethod
    def _version_of(self, model: M) -> str:
        """The version ``model`` answers as."""

    def _describe(self, model: M) -> str:
        """What the swap log line says about ``model`` besides its version."""
        return str(getattr(model, "family", "unknown"))

    def _after_poll(self, target: str | None) -> None:
        """Called, under the poll lock, after each poll that could read the ledger."""

    def _after_swap(self, model: M) -> None:
        """Called right after ``model`` took over."""

    # ---- the procedure -----------------------------------------------------------------
    @property
    def version(self) -> str | None:
        """The version being served (None: nothing)."""
        current = self.current
        return self._version_of(current) if current is not None else None

    def poll_once(self) -> None:
        """Read the alias once; load, check and swap when it moved (a ledger failure only
        sets :attr:`last_poll_error`: serving goes on with what it has)."""
        with self._lock:
            if self.packaged:
                self._poll_pinned()
                return
            try:
                production = self._ledger.production()
                pending = self._ledger.pending()
            except Exception as exc:  # an unreachable ledger must not stop serving
                self.last_poll_error = f"ledger unreachable: {type(exc).__name__}: {exc}"
                self._log.warning("%s alias poll failed, keeping %s: %s", self.label,
                                  self.version, exc)
                return
            self.last_poll_error = None
            target = production.version if production is not None else None
            candidate = pending.version if pending is not None else None
            if candidate is not None and candidate != self._refused_target:
                target = candidate  # a deploy-pending candidate: serve it for gate 3
            self.alias_version = target
            if target is not None and target != self.version:
                if target != self._refused_target:  # a refused version is not retried
                    self._swap_to(target)
            elif target == self.version and self._refused_target != candidate:
                self._refused_target = None  # back on a good one: a refused one may return
            self._after_poll(target)

    def _poll_pinned(self) -> None:
        """A packaged follower's poll: load the pinned version once (no ledger)."""
        target = self._pinned_version
        self.alias_version = target
        if target is not None and self.current is None and target != self._refused_target:
            self._swap_to(target)
        self._after_poll(target)

    def admit(self, version: str) -> M:
        """Load and check ``version`` without serving it (raises what refuses it)."""
        return self._check(self._load(version))

    def _swap_to(self, version: str) -> None:
        started = time.perf_counter()
        previous = self.version
        try:
            candidate = self.admit(version)
        except Exception as exc:  # a broken version is a refusal, never a crash
            self._refuse(version, refusal_reason(exc), previous)
            return
        self.current = candidate  # the swap: one reference assignment
        self._refused_target = None
        self.swaps += 1
        self._after_swap(candidate)
        self._log.info("now serving %s %s (%s; was %s; loaded and checked in %.0f ms)",
                       self.label, version, self._describe(candidate), previous,
                       (time.perf_counter() - started) * 1000)

    def _refuse(self, version: str, reason: str, serving: str | None) -> None:
        self._refused_target = version
        self.refusals.append(Refusal(version=version, reason=reason))
        self.refused += 1
        self._log.error("refused to serve %s %s, still serving %s: %s", self.label, version,
                        serving, reason)
        if self.packaged:
            return  # a Bento's pinned version: no ledger alias to roll back
        try:
            self._ledger.record_event(
                kind="rejection",
                version=version,
                reason=f"hot swap refused: {reason}",
                actor=SERVING_ACTOR,
                previous_version=serving,
                details={"stage": "serving", "serving_version": serving},
            )
        except Exception:
            self._log.exception("could not record the refusal of %s %s in the ledger",
                                self.label, version)

    def alias_refusal(self) -> Refusal | None:
        """The refusal of the version the alias names now, if that version was refused."""
        refusal = self.refusals[-1] if self.refusals else None
        if refusal is not None and refusal.version == self.alias_version:
            return refusal
        return None

    def close(self) -> None:
        """Release the ledger connection."""
        self._ledger.close()
