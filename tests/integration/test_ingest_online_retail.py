"""The real UCI Online Retail export through configs/online_retail.yaml (541,909 lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopflow.ingest import ingest_source
from shopflow.settings import load_settings
from shopflow.warehouse import connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "online_retail.yaml"


def test_online_retail_config_ingests_the_real_file(online_retail_path: Path) -> None:
    settings = load_settings(CONFIG)
    summary = ingest_source(settings, progress=False)
    assert summary.files[0].source_file == str(online_retail_path.resolve())
    # facts of the dataset (its README), not tuned numbers
    assert summary.rows_read == 541_909
    assert summary.rows_read == summary.rows_ingested + summary.rows_quarantined
    assert summary.quarantined_by_reason.get("missing_user_id") == 135_080
    assert set(summary.quarantined_by_reason) <= {"missing_user_id", "invalid_price"}

    with connect(settings) as wh:
        events = wh.table("raw", "raw_events")
        kinds = dict(wh.query_df(
            f"select event_type, count(*) as n from {events} group by 1").values.tolist())
        # cancellations (InvoiceNo C...) are returns with negative quantity, and only they
        not_returns = wh.scalar(
            f"select count(*) from {events} where order_id like 'C%' and event_type <> 'return'")
        bad_returns = wh.scalar(
            f"select count(*) from {events} where event_type = 'return' and quantity >= 0")
        float_ids = wh.scalar(f"select count(*) from {events} where user_id like '%.%'")
        span = wh.query_df(f"select min(event_time) as lo, max(event_time) as hi from {events}")
        sample = wh.scalar(f"select count(*) from {events} where user_id = '17850'")
    assert set(kinds) == {"purchase", "return"}
    assert kinds["return"] > 1_000
    assert not_returns == 0 and bad_returns == 0 and float_ids == 0
    assert str(span.loc[0, "lo"]).startswith("2010-12-01")
    assert str(span.loc[0, "hi"]).startswith("2011-12-09")
    assert sample > 0

    again = ingest_source(settings, progress=False)
    assert again.skipped_files == [str(online_retail_path.resolve())]
