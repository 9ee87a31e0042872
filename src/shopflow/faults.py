"""Deterministic crash points for the crash-safety tests: ``SHOPFLOW_FAULT``.

A test that wants to know whether a run survives being killed at a given instant cannot
rely on timing (a SIGKILL "about two seconds in" lands somewhere different on every
machine). Instead the code names its risky instants with :func:`crash_point`, and a test
starts the pipeline with ``SHOPFLOW_FAULT=<point>``; the process that reaches that point
SIGKILLs itself there: no ``finally``, no ``atexit``, no flush, like a power cut or the
OOM killer.

Points are ``before:<stage>`` and ``after:<stage>`` around every pipeline stage (stage
labels as in the run records, e.g. ``after:dbt_layer[marts]``) and ``inside:<where>`` in
the long stages (``inside:ingest``, ``inside:dbt``, ``inside:materialize``,
``inside:train``, ``inside:register``, ``inside:publish``). Several points may be given,
comma-separated.

Unset (the default, and always in production) every call is a string comparison and
nothing else. The variable is read when a point is reached, not at import, and is not a
run setting: it is never part of a run's configuration or its hash.
"""

from __future__ import annotations

import logging
import os
import signal

logger = logging.getLogger(__name__)

ENV_VAR = "SHOPFLOW_FAULT"


def armed(point: str) -> bool:
    """Whether ``SHOPFLOW_FAULT`` names ``point``."""
    wanted = os.environ.get(ENV_VAR, "")
    return bool(wanted) and point in {p.strip() for p in wanted.split(",")}


def crash_point(point: str) -> None:
    """SIGKILL this process here if ``SHOPFLOW_FAULT`` names ``point`` (test-only hook)."""
    if armed(point):
        logger.critical("fault injection: SIGKILL at %s", point)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
