"""Child processes stop with their whole group, even workers that ignore SIGTERM."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

import pytest

from shopflow.processes import ChildExited, ChildProcess, stop_all, wait_until

if TYPE_CHECKING:
    from pathlib import Path

# a leader that forks a worker ignoring SIGTERM, prints the worker's pid, then sleeps
STUBBORN = """
import os, signal, sys, time
pid = os.fork()
if pid == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
    os._exit(0)
print(pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for every purpose but the process table
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_all_kills_the_group_after_the_bound(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    child = ChildProcess("stubborn", [sys.executable, "-c", STUBBORN], env=os.environ,
                         log_path=log).start()
    try:
        wait_until(lambda: log.read_text().strip().isdigit(), timeout=60, what="the worker",
                   children=[child], interval=0.1)
        worker = int(log.read_text().strip())
        assert _alive(worker)
    finally:
        stop_all([child], timeout=1.0)
    assert not child.running()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker)


def test_wait_until_fails_early_when_a_child_exits(tmp_path: Path) -> None:
    child = ChildProcess("quitter", [sys.executable, "-c", "print('bye')"], env=os.environ,
                         log_path=tmp_path / "q.log").start()
    try:
        with pytest.raises(ChildExited, match="quitter exited with 0"):
            wait_until(lambda: False, timeout=60, what="never", children=[child],
                       interval=0.1)
    finally:
        stop_all([child], timeout=1.0)


def test_wait_until_is_bounded() -> None:
    with pytest.raises(TimeoutError, match="never"):
        wait_until(lambda: False, timeout=0.2, what="never", interval=0.05)
