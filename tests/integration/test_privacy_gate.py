"""A gate that fails on a user-id check names the shopper only by pseudonym.

The raw gate runs for real (GX, Data Docs, report, quarantine) on a batch whose one
padded user id breaks an ``error`` check. The failing value is sampled by GX; the test
reads everything the gate leaves behind -- the exception's message, the JSON and HTML
reports, GX's stored results, Data Docs and the quarantine README -- and finds the
keyed-hash token there, never the raw id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from fixtures_raw import hand_events, write_raw_events
from shopflow.privacy import id_hasher
from shopflow.quality import GateFailed, run_gate

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = pytest.mark.integration

RAW_ID = " shopper-4242-secret"  # padded: breaks 'user_id well formed', an error check


def _text_files(settings: Settings) -> dict[str, str]:
    """Every text file the gate may have written under SHOPFLOW_HOME (reports, GX, quarantine)."""
    texts = {}
    for path in settings.home_dir.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".html", ".md", ".jsonl"}:
            texts[str(path)] = path.read_text(errors="replace")
    return texts


def test_a_failing_user_id_check_names_the_shopper_by_token_only(settings: Settings) -> None:
    events = hand_events()
    events[0] = replace(events[0], user_id=RAW_ID)
    write_raw_events(settings, events)

    with pytest.raises(GateFailed) as caught:
        run_gate(settings, "raw", batch_id="b1")

    token = id_hasher(settings)(RAW_ID)
    check = next(c for c in caught.value.result.failed_errors
                 if c.check == "user_id well formed (no blanks around)")
    assert check.examples == [repr(token)]
    assert token in check.observed
    message = str(caught.value)
    assert token in message and "shopper-4242" not in message

    texts = _text_files(settings)
    assert any("data_docs" in p for p in texts), sorted(texts)  # Data Docs were rendered
    assert any("validations" in p for p in texts), sorted(texts)  # GX stored its results
    leaking = sorted(p for p, text in texts.items() if "shopper-4242" in text)
    assert leaking == []
    assert any(token in text for p, text in texts.items() if "data_docs" in p)
