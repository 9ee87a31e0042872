"""The root of Shopflow's own errors, and the one line between a glitch and a verdict.

A task that fails on a busy database or a slow registry may well succeed when Airflow
retries it; a task that fails because a quality gate said no, a dbt test failed, the
params are wrong or the data cannot be trained on fails the same way every time. Those
errors derive from :class:`PermanentError`, so the task runner decides by type (never by
class-name strings) to stop the run without a retry and to report the stage as
*blocked*: a verdict, not a crash.

A leaf module: it imports nothing from Shopflow, so any part may raise these errors.
"""

from __future__ import annotations


class ShopflowError(Exception):
    """Base of the errors Shopflow raises on purpose."""


class PermanentError(ShopflowError):
    """Retrying cannot help: a gate, the input or the data said no, so the run is blocked.

    Subclasses keep their historical bases too (``class GateFailed(PermanentError,
    RuntimeError)``), so existing ``except RuntimeError`` / ``except ValueError`` clauses
    still catch them.
    """


def blocks_run(error: BaseException) -> bool:
    """Whether ``error`` is a verdict that stops the run (never retried, reported blocked).

    That is every :class:`PermanentError`, and pydantic's ``ValidationError``: a value
    that does not fit its schema will not fit it on the next try either.
    """
    if isinstance(error, PermanentError):
        return True
    from pydantic import ValidationError  # pydantic is imported by the settings anyway

    return isinstance(error, ValidationError)
