"""The kinds of alert Shopflow raises, and the alert itself as every channel renders it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from shopflow.settings import ALERT_EVENT_KINDS

if TYPE_CHECKING:
    from shopflow.settings import AlertEvent

Severity = Literal["error", "warning"]

#: Every event kind, what it means and who raises it (docs: README "Alerts").
ALERT_EVENTS: dict[AlertEvent, str] = {
    "run_failed": "a DAG run failed (Airflow notifier on every Shopflow DAG)",
    "gate_blocked": "a gate said no: data (gate 1), post-deploy (gate 3), live (gate 4 "
                    "without an automatic rollback)",
    "deploy_pending": "a promoted model waits for gate 3: no model service answered",
    "rollback": "production moved back to an earlier model (gate 3, gate 4 or a person)",
    "drift": "feature or prediction drift beyond the threshold (retraining triggered)",
    "skew": "training/serving skew beyond its tolerance (monitoring)",
    "staleness": "the production model, online features or recommender snapshot older "
                 "than allowed, in data time (monitoring)",
    "integrity": "a stored model file differs from the sha256 the ledger recorded (refused)",
}
assert tuple(ALERT_EVENTS) == ALERT_EVENT_KINDS  # one list of kinds: settings validates them

_WARNINGS: frozenset[str] = frozenset({"deploy_pending", "drift", "skew", "staleness"})


def severity_of(event: AlertEvent) -> Severity:
    """``error`` when something failed or was undone, ``warning`` when it needs a look."""
    return "warning" if event in _WARNINGS else "error"


@dataclass(frozen=True)
class Alert:
    """One alert: what happened (``event``), one line for people, and the facts."""

    event: AlertEvent
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def severity(self) -> Severity:
        return severity_of(self.event)

    @property
    def subject(self) -> str:
        """The e-mail subject and the first line of the chat text."""
        return f"[shopflow] {self.severity.upper()} {self.event}: {self.summary}"[:200]

    def text(self) -> str:
        """Plain text: the subject line, then the details as indented JSON."""
        lines = [self.subject, "", self.summary, "", f"at: {self.at}"]
        if self.details:
            lines += ["", json.dumps(self.details, indent=2, sort_keys=True, default=str)]
        return "\n".join(lines)

    def payload(self) -> dict[str, Any]:
        """The webhook body: Slack's ``text`` plus the structured fields for other receivers."""
        return {
            "text": self.subject,
            "source": "shopflow",
            "event": self.event,
            "severity": self.severity,
            "summary": self.summary,
            "at": self.at,
            "details": self.details,
        }
