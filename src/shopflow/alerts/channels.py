"""Where alerts go: an SMTP server and a JSON webhook, each a plain function.

Plain ``smtplib`` rather than the Airflow SMTP provider's hook: alerts are also raised
outside Airflow (``shopflow rollback``, the CLI's deploy, the service), and the hook needs
an Airflow connection and an imported Airflow, which in those processes would create an
Airflow home as a side effect. The settings are Shopflow's own (``settings.alerts``).
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopflow.alerts.events import Alert
    from shopflow.settings import AlertSettings


def send_email(config: AlertSettings, alert: Alert) -> None:
    """Mail ``alert`` to ``config.smtp_to`` (raises on any SMTP or network error)."""
    if config.smtp_host is None or not config.smtp_to:
        raise ValueError("alerts.smtp_host and alerts.smtp_to are both needed for e-mail")
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = config.smtp_from
    message["To"] = ", ".join(config.smtp_to)
    message["X-Shopflow-Event"] = alert.event
    message.set_content(alert.text())
    with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
        if config.smtp_starttls:
            smtp.starttls()
        if config.smtp_user and config.smtp_password:
            smtp.login(config.smtp_user, config.smtp_password)
        smtp.send_message(message)


def post_webhook(config: AlertSettings, alert: Alert) -> None:
    """POST ``alert.payload()`` as JSON to ``config.webhook_url`` (raises on non-2xx)."""
    import httpx

    if config.webhook_url is None:
        raise ValueError("alerts.webhook_url is not set")
    response = httpx.post(config.webhook_url, json=alert.payload(), timeout=config.timeout)
    response.raise_for_status()
