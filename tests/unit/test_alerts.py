"""Alerts reach a real SMTP sink and a real HTTP receiver on loopback, and never raise."""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import pytest

from alert_sinks import SmtpSink, WebhookReceiver
from shopflow.alerts import ALERT_EVENTS, send_alert
from shopflow.settings import ALERT_EVENT_KINDS, load_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shopflow.settings import Settings


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


def _configured(settings: Settings, smtp: SmtpSink | None, hook: WebhookReceiver | None,
                **alerts: object) -> Settings:
    config = settings.alerts.model_copy(update={
        "smtp_host": smtp.host if smtp else None, "smtp_port": smtp.port if smtp else 25,
        "smtp_to": ["oncall@shop.test", "ml@shop.test"] if smtp else [],
        "webhook_url": hook.url if hook else None, "timeout": 5.0, **alerts,
    })
    return settings.model_copy(update={"alerts": config})


def test_one_alert_goes_by_email_and_webhook(settings: Settings, smtp_sink: SmtpSink,
                                             webhook: WebhookReceiver) -> None:
    delivery = send_alert(_configured(settings, smtp_sink, webhook), "rollback",
                          "production rolled back from v2 to v1", {"from_version": "v2"})
    assert sorted(delivery.sent) == ["email", "webhook"] and not delivery.failed
    (sender, recipients, message), = smtp_sink.messages
    assert sender == "shopflow@localhost"
    assert recipients == ["oncall@shop.test", "ml@shop.test"]
    assert message["Subject"] == "[shopflow] ERROR rollback: production rolled back from v2 to v1"
    assert message["X-Shopflow-Event"] == "rollback"
    assert '"from_version": "v2"' in message.get_content()
    (body,) = webhook.bodies
    assert body["text"].startswith("[shopflow] ERROR rollback:")  # Slack shows this
    assert (body["event"], body["severity"], body["summary"]) == (
        "rollback", "error", "production rolled back from v2 to v1")
    assert body["details"] == {"from_version": "v2"}


def test_failed_deliveries_are_logged_never_raised(
    settings: Settings, webhook: WebhookReceiver, caplog: pytest.LogCaptureFixture,
) -> None:
    webhook.status = 500
    closed = SmtpSink(port=_closed_port())
    with caplog.at_level(logging.WARNING, logger="shopflow.alerts"):
        delivery = send_alert(_configured(settings, closed, webhook), "drift", "PSI 0.4")
    assert delivery.sent == []
    assert set(delivery.failed) == {"email", "webhook"}
    assert "500" in delivery.failed["webhook"]
    assert "could not deliver the drift alert by webhook" in caplog.text
    assert "ALERT drift: PSI 0.4" in caplog.text  # the log line is there whatever happens


def test_events_not_switched_on_are_only_logged(settings: Settings,
                                                webhook: WebhookReceiver) -> None:
    quiet = _configured(settings, None, webhook, events=["rollback"])
    assert send_alert(quiet, "drift", "PSI 0.4").muted
    assert send_alert(quiet, "rollback", "back to v1").sent == ["webhook"]
    assert webhook.events() == ["rollback"]


def test_every_kind_is_known_and_unknown_kinds_are_a_programming_error(
    settings: Settings, webhook: WebhookReceiver,
) -> None:
    assert tuple(ALERT_EVENTS) == ALERT_EVENT_KINDS
    assert {"skew", "staleness", "deploy_pending"} <= set(ALERT_EVENTS)  # ready for monitoring
    for kind in ALERT_EVENT_KINDS:
        send_alert(_configured(settings, None, webhook), kind, f"a {kind}")
    assert webhook.events() == list(ALERT_EVENT_KINDS)
    with pytest.raises(ValueError, match="unknown alert event"):
        send_alert(settings, "oops", "x")  # type: ignore[arg-type]


def test_alert_settings_come_from_the_environment(shopflow_home: object,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPFLOW_ALERTS__SMTP_HOST", "mail.shop.test")
    monkeypatch.setenv("SHOPFLOW_ALERTS__SMTP_TO", '["ops@shop.test"]')
    monkeypatch.setenv("SHOPFLOW_ALERTS__WEBHOOK_URL", "https://hooks.example/x")
    monkeypatch.setenv("SHOPFLOW_ALERTS__EVENTS", '["run_failed", "rollback"]')
    alerts = load_settings().alerts
    assert (alerts.smtp_host, alerts.smtp_to, alerts.webhook_url) == (
        "mail.shop.test", ["ops@shop.test"], "https://hooks.example/x")
    assert alerts.events == ["run_failed", "rollback"]
    monkeypatch.setenv("SHOPFLOW_ALERTS__EVENTS", '["nonsense"]')
    with pytest.raises(ValueError, match="alerts.events"):
        load_settings()


def test_drift_beyond_the_threshold_raises_a_drift_alert(settings: Settings,
                                                          webhook: WebhookReceiver) -> None:
    from shopflow.pipeline.monitoring_stages import drift_verdict
    from shopflow.pipeline.vocabulary import StageContext, StageSkipped

    hooked = _configured(settings, None, webhook)
    context = StageContext(run_id="scheduled__1", dag_id="shopflow_monitoring")
    with pytest.raises(StageSkipped):
        drift_verdict(hooked, context, features={"drifted": []}, predictions={"drifted": False})
    assert webhook.bodies == []  # no drift, no alert
    verdict = drift_verdict(hooked, context,
                            features={"version": "v1", "drifted": ["recency_days"],
                                      "max_psi": 0.61},
                            predictions={"version": "v1", "drifted": True, "psi": 0.4})
    assert verdict["retrain"] is True
    (body,) = webhook.bodies
    assert body["event"] == "drift" and body["severity"] == "warning"
    assert "recency_days" in body["summary"]
    assert body["details"]["features_max_psi"] == 0.61 and body["details"]["version"] == "v1"
