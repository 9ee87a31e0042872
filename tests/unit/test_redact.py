"""No password reaches a message: connection errors and CLI output mask credentials."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from shopflow.redact import MASK, redact, redact_url
from shopflow.settings import load_settings

# a closed port on loopback: every connection attempt fails at once
SECRET = "s3cr@t-pw"
URL = "postgresql://shop:s3cr%40t-pw@127.0.0.1:1/test"


def test_urls_keep_user_host_and_path_but_not_the_password() -> None:
    assert redact_url(URL) == f"postgresql://shop:{MASK}@127.0.0.1:1/test"
    assert redact_url("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"
    for plain in ("postgresql://shop@db/x", "sqlite:////tmp/ledger.db", "127.0.0.1:6379"):
        assert redact_url(plain) == plain
    message = f"FATAL: password {SECRET!r} rejected for {URL} (s3cr%40t-pw)"
    masked = redact(message, URL, None)
    assert SECRET not in masked and "s3cr%40t-pw" not in masked and MASK in masked


def test_a_failing_warehouse_connection_does_not_print_its_password() -> None:
    from shopflow.warehouse import PostgresWarehouse, WarehouseError

    settings = load_settings(warehouse={"backend": "postgres", "postgres_url": URL})
    with pytest.raises(WarehouseError) as caught:
        PostgresWarehouse(settings)
    text = str(caught.value)
    assert "cannot connect to PostgreSQL warehouse" in text and "127.0.0.1:1" in text
    assert SECRET not in text and "s3cr%40t" not in text
    assert caught.value.__cause__ is None  # the driver's exception (and its DSN) not chained


def test_status_with_an_unreachable_ledger_masks_its_password(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from shopflow.cli import cli

    monkeypatch.setenv("SHOPFLOW_DATABASE_URL", URL)
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code != 0
    assert "cannot read the ledger at postgresql://shop:***@127.0.0.1:1/test" in result.output
    assert SECRET not in result.output and "s3cr%40t" not in result.output
