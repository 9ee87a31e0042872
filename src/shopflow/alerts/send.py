"""``send_alert``: log an alert, then deliver it to every configured channel, never raising."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.alerts.channels import post_webhook, send_email
from shopflow.alerts.events import ALERT_EVENTS, Alert
from shopflow.jsonable import jsonable

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from shopflow.settings import AlertEvent, AlertSettings, Settings

logger = logging.getLogger(__name__)


@dataclass
class AlertDelivery:
    """What became of one alert.

    Attributes:
        alert: the alert as sent.
        sent: channels that accepted it (``email``, ``webhook``).
        failed: channel -> why its delivery failed (logged too).
        muted: the event kind is not in ``alerts.events`` (logged only).
    """

    alert: Alert
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    muted: bool = False


def _channels(config: AlertSettings) -> dict[str, Callable[[AlertSettings, Alert], None]]:
    channels: dict[str, Callable[[AlertSettings, Alert], None]] = {}
    if config.smtp_host and config.smtp_to:
        channels["email"] = send_email
    if config.webhook_url:
        channels["webhook"] = post_webhook
    return channels


def send_alert(settings: Settings, event: AlertEvent, summary: str,
               details: Mapping[str, Any] | None = None) -> AlertDelivery:
    """Tell people that ``event`` happened; returns what was delivered where.

    Args:
        settings: ``settings.alerts`` says which events go out and to which channels.
        event: one of :data:`shopflow.alerts.ALERT_EVENTS` (``run_failed``,
            ``gate_blocked``, ``deploy_pending``, ``rollback``, ``drift``, ``skew``,
            ``staleness``).
        summary: one line a person understands without opening anything.
        details: the facts (versions, numbers, run id, report paths); JSON-able or made so.

    Raises:
        ValueError: ``event`` is not a known kind (a programming error, not a delivery one).
    """
    if event not in ALERT_EVENTS:
        raise ValueError(f"unknown alert event {event!r}; expected one of {list(ALERT_EVENTS)}")
    alert = Alert(event=event, summary=summary, details=jsonable(dict(details or {})))
    level = logging.ERROR if alert.severity == "error" else logging.WARNING
    logger.log(level, "ALERT %s: %s", event, summary)
    config = settings.alerts
    delivery = AlertDelivery(alert=alert)
    if event not in config.events:
        delivery.muted = True
        return delivery
    for name, deliver in _channels(config).items():
        try:
            deliver(config, alert)
        except Exception as exc:  # an alert must never fail the work that raised it
            delivery.failed[name] = f"{type(exc).__name__}: {exc}"
            logger.warning("could not deliver the %s alert by %s: %s", event, name, exc)
        else:
            delivery.sent.append(name)
    return delivery
