"""Served predictions joined with matured labels: window edges, maturity, probes, as_of."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from shopflow.monitoring.outcomes import OUTCOME_COLUMNS, label_outcomes, live_rows
from shopflow.monitoring.served_gate import outcome_metrics, rescore_logged, version_outcomes
from shopflow.monitoring.skew import sample_rows

HORIZON = timedelta(days=7)
T0 = "2026-01-01T00:00:00+00:00"


def _hash(user_id: str) -> str:
    return f"h-{user_id}"


def _log(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {"at": "2026-11-30T12:00:00+00:00", "as_of": T0, "endpoint": "predict",
            "source": "live", "model_version": "v1", "score": 0.5, "known_user": True,
            "features": None, "items": None, "row": 0}
    frame = pd.DataFrame([{**base, "request_id": f"r{i}", **row} for i, row in enumerate(rows)])
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True, format="ISO8601")
    return frame


def _purchases(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [u for u, _ in pairs],
                         "event_time": pd.to_datetime([t for _, t in pairs], format="ISO8601")})


def _join(log: pd.DataFrame, purchases: pd.DataFrame, latest: str | None = "2026-03-01"
          ) -> pd.DataFrame:
    return label_outcomes(log, purchases, latest_event=None if latest is None
                          else pd.Timestamp(latest), horizon=HORIZON, hash_id=_hash)


def test_label_is_a_purchase_after_as_of_up_to_the_window_end() -> None:
    log = _log([{"user": "h-at_start"}, {"user": "h-inside"}, {"user": "h-at_end"},
                {"user": "h-after"}, {"user": "h-before_and_after"}, {"user": "h-never"}])
    purchases = _purchases(
        ("at_start", "2026-01-01 00:00:00"),  # at as_of: known to the features, not a label
        ("inside", "2026-01-03 10:00:00"),
        ("at_end", "2026-01-08 00:00:00"),  # exactly as_of + horizon: in the window
        ("after", "2026-01-08 00:00:01"),
        ("before_and_after", "2025-12-30"), ("before_and_after", "2026-01-05"),
        ("someone_else", "2026-01-02"))
    frame = _join(log, purchases)
    assert frame["user"].tolist() == ["h-at_start", "h-inside", "h-at_end", "h-after",
                                      "h-before_and_after", "h-never"]
    assert frame["label"].tolist() == [0, 1, 1, 0, 1, 0]
    assert (frame["label_window_end"] == pd.Timestamp("2026-01-08", tz="UTC")).all()
    assert list(frame.columns[:len(OUTCOME_COLUMNS)]) == OUTCOME_COLUMNS


def test_only_rows_whose_window_the_warehouse_covers_have_matured() -> None:
    log = _log([{"user": "h-a", "as_of": "2026-01-01"}, {"user": "h-b", "as_of": "2026-01-10"}])
    frame = _join(log, _purchases(("a", "2026-01-02"), ("b", "2026-01-11")),
                  latest="2026-01-12")
    assert frame["user"].tolist() == ["h-a"] and frame.attrs["pending"] == 1
    edge = _join(log, _purchases(), latest="2026-01-17")  # exactly 2026-01-10 + 7 days
    assert edge["user"].tolist() == ["h-a", "h-b"] and edge.attrs["pending"] == 0
    nothing = _join(log, _purchases(), latest=None)  # an empty warehouse: nothing matured
    assert nothing.empty and nothing.attrs["pending"] == 2


def test_a_row_without_as_of_is_judged_from_its_answer_time() -> None:
    log = _log([{"user": "h-a", "as_of": None, "at": "2026-02-01T00:00:00+00:00"}])
    frame = _join(log, _purchases(("a", "2026-02-05")))
    assert frame["as_of"].tolist() == [pd.Timestamp("2026-02-01", tz="UTC")]
    assert frame["label"].tolist() == [1]


def test_the_same_user_served_twice_gets_a_label_per_answer() -> None:
    log = _log([{"user": "h-a", "as_of": "2026-01-01"}, {"user": "h-a", "as_of": "2026-01-20"}])
    frame = _join(log, _purchases(("a", "2026-01-04"), ("a", "2026-02-10")))
    assert frame["label"].tolist() == [1, 0]


def test_unknown_log_columns_pass_through_and_probes_are_left_out() -> None:
    log = _log([{"user": "h-a", "arm": "challenger"}, {"user": "h-b", "source": "probe"},
                {"user": "h-c", "endpoint": "recommend"}])
    live = live_rows(log)
    assert live["user"].tolist() == ["h-a"]
    frame = _join(live, _purchases(("a", "2026-01-02")))
    assert frame["arm"].tolist() == ["challenger"] and frame["label"].tolist() == [1]
    with pytest.raises(ValueError, match="endpoint"):
        live_rows(log, "score")


def test_version_outcomes_score_each_version_on_its_own_known_rows() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    frame = pd.DataFrame({
        "model_version": ["good"] * 200 + ["bad"] * 200, "label": labels,
        "score": np.r_[labels[:200] * 0.6 + rng.random(200) * 0.4, rng.random(200)],
        "known_user": [True] * 190 + [False] * 10 + [True] * 200})
    result = version_outcomes(frame)
    assert result["good"]["rows"] == 190 and result["good"]["cold_starts"] == 10
    assert result["bad"]["rows"] == 200 and result["bad"]["cold_starts"] == 0
    assert result["good"]["roc_auc"] > 0.95 > 0.65 > result["bad"]["roc_auc"]
    low, high = result["good"]["roc_auc_ci95"]
    assert low <= result["good"]["roc_auc"] <= high
    assert result["good"]["purchase_rate"] == pytest.approx(labels[:190].mean())
    one_class = outcome_metrics(np.zeros(5), np.linspace(0, 1, 5))
    assert np.isnan(one_class["roc_auc"]) and one_class["purchase_rate"] == 0


def test_rescore_logged_uses_the_logged_vectors_and_names_missing_features() -> None:
    class Model:
        feature_names = ["a", "b"]

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            return frame["a"].fillna(0).to_numpy() / 10 + frame["b"].to_numpy() / 100

    rows = pd.DataFrame({"features": [{"a": 1.0, "b": 2.0}, {"a": None, "b": 5.0}]})
    assert rescore_logged(Model(), rows).tolist() == pytest.approx([0.12, 0.05])
    with pytest.raises(ValueError, match="lack 1 of the model's features"):
        rescore_logged(Model(), pd.DataFrame({"features": [{"a": 1.0}]}))


def test_skew_sample_is_seeded_and_leaves_out_rows_whose_as_of_may_lag() -> None:
    """Rows answered up to the runtime's refresh interval before a newer watermark first
    shows in the log may hold the new values under the old ``as_of``: not sampled."""
    early = [{"user": f"h-{i}", "at": "2026-11-30T12:00:00+00:00"} for i in range(30)]
    lagging = {"user": "h-lag", "at": "2026-11-30T12:59:50+00:00"}
    newer = {"user": "h-newer", "at": "2026-11-30T13:00:00+00:00", "as_of": "2026-01-08"}
    unknown = {"user": "h-unknown", "at": "2026-11-30T12:59:55+00:00", "as_of": None}
    log = _log([*early, lagging, newer, unknown, {"user": "h-probe", "source": "probe"}])
    first = sample_rows(log, 10)
    assert len(first) == 10 and first["user"].tolist() == sample_rows(log, 10)["user"].tolist()
    everything = set(sample_rows(log, 100)["user"])
    assert everything == {f"h-{i}" for i in range(30)} | {"h-newer", "h-unknown"}
