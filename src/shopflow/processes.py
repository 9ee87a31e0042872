"""Child processes that always stop: each in its own process group, stopped in a bound.

``shopflow airflow up`` and the tests that start a real Airflow run several long-lived
servers (api-server, scheduler, dag-processor, triggerer, the model service), each of
which forks workers of its own. Each child gets a new session, so Ctrl-C in the caller's
terminal does not race the orderly stop, and stopping it signals the whole group: SIGTERM
first, SIGKILL after ``timeout`` seconds, so nothing is left running either way.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a child's log file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ChildProcess:
    """One named child in its own process group, its output in a log file.

    Args:
        name: how messages name it (``scheduler``).
        command: the program and its arguments.
        env: the child's whole environment.
        log_path: where stdout and stderr go (appended).
        cwd: working directory (default: the caller's).
    """

    def __init__(self, name: str, command: list[str], *, env: Mapping[str, str],
                 log_path: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.command = command
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ChildProcess:
        """Start it in a new session (process group); returns immediately."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        logger.info("starting %s: %s (log: %s)", self.name, " ".join(self.command), self.log_path)
        self.process = subprocess.Popen(
            self.command, env=self.env, cwd=self.cwd, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        """None while it runs (or before it started), else its exit status."""
        return self.process.poll() if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of its log, for error messages."""
        return log_tail(self.log_path, lines)

    def signal_group(self, sig: signal.Signals) -> None:
        """Send ``sig`` to its whole process group (workers included), if any is left."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def stop_all(children: Iterable[ChildProcess], *, timeout: float = 20.0) -> None:
    """Stop every child and its group: SIGTERM to all, SIGKILL to what is left after ``timeout``.

    All groups get SIGTERM at once (so servers shut down in parallel, not one bound after
    another), then each is waited for until the shared deadline; any group still there
    gets SIGKILL, including workers whose leader already exited.
    """
    children = [c for c in children if c.process is not None]
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0fs: killing it", child.name, timeout)
    for child in children:
        child.signal_group(signal.SIGKILL)  # stragglers in the group, if any
        assert child.process is not None
        try:
            child.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
            logger.error("%s (pid %s) survived SIGKILL", child.name, child.pid)
        child.close()


def wait_until(check: Callable[[], bool], *, timeout: float, what: str,
               children: Iterable[ChildProcess] = (), interval: float = 1.0) -> None:
    """Poll ``check`` until it is true; fail early when a child dies, late at ``timeout``.

    Raises:
        ChildExited: one of ``children`` exited while waiting.
        TimeoutError: ``check`` stayed false for ``timeout`` seconds.
    """
    watched = list(children)
    deadline = time.monotonic() + timeout
    while True:
        for child in watched:
            code = child.exit_code()
            if code is not None:
                raise ChildExited(f"{child.name} exited with {code} while waiting for {what}:\n"
                                  f"{child.log_tail()}")
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
        time.sleep(interval)


class ChildExited(RuntimeError):
    """A child that should keep running exited."""
