"""Alerts: tell a person when a run fails, a gate blocks, a model is rolled back or data drifts.

One function sends every alert, wherever it is raised (an Airflow task or notifier, the
in-process ``shopflow pipeline run``, the CLI, monitoring)::

    from shopflow.alerts import send_alert

    send_alert(settings, "rollback", "production back to v1 after gate 3", {"from": "v2"})

It always logs the alert (an ``ERROR``/``WARNING`` line starting ``ALERT``), then delivers it
to the channels configured in ``settings.alerts`` (SMTP e-mail, a JSON webhook) for the
event kinds switched on there. A failed delivery is logged and reported in the returned
:class:`AlertDelivery`; it never raises, so an alert can never fail the task that raised it.
"""

from __future__ import annotations

from shopflow.alerts.events import ALERT_EVENTS, Alert, severity_of
from shopflow.alerts.send import AlertDelivery, send_alert

__all__ = ["ALERT_EVENTS", "Alert", "AlertDelivery", "send_alert", "severity_of"]
