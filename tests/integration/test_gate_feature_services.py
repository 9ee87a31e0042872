"""Gate 2 across catalogues through real Feast: a v1 champion against a v2 challenger.

A model trained on ``propensity_v1`` (the frozen fixed list of ``marts.user_features_v1``)
is in production when the catalogue becomes ``propensity_v2``. The challenger trains on
v2; gate 2 scores the champion through its *own* feature service, both services being
real Feast feature services over the offline Parquet snapshots, joined point in time on
the same labelled (user, cutoff) rows. The champion stays servable meanwhile: the online
store holds both views and the runtime reads the one its model records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from shopflow.features import apply, build_training_set, load_label_entities, materialize
from shopflow.features.schema import (
    ITEM_TABLE,
    LEGACY_USER_CATALOGUE,
    PROPENSITY_V1,
    PROPENSITY_V2,
    USER_TABLE,
    USER_V1_TABLE,
)
from shopflow.features.synthetic import feature_row, write_labels, write_mart
from shopflow.ledger import Ledger
from shopflow.registry import load_model
from shopflow.serving.runtime import ServingRuntime
from shopflow.settings import Settings, load_settings
from shopflow.training.pipeline import run_training
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = ["user_id", "event_timestamp"]


def _v1_mart(frame: pd.DataFrame) -> pd.DataFrame:
    """The same shoppers as the v1 SQL would describe them: the fixed list, lookback-only.

    A v1 row exists only for a shopper with an event in the lookback (the v2 mart also
    has dormant ones); tenure is capped by the lookback and days_since_last_purchase is
    the lookback when they never bought, so v1 and v2 disagree on shared column names.
    """
    active = frame[frame["events_90d"] > 0]
    renamed = {"events_lookback": "events_90d", "purchases_lookback": "purchases_90d",
               "monetary_lookback": "monetary_90d"}
    columns = {}
    for feature in LEGACY_USER_CATALOGUE:
        columns[feature.name] = active[renamed.get(feature.name, feature.name)].to_numpy()
    mart = pd.DataFrame(columns)
    mart["days_since_last_purchase"] = mart["days_since_last_purchase"].fillna(90.0)
    mart["tenure_days"] = mart["tenure_days"].clip(upper=90.0)
    mart.insert(0, "cutoff_time", active["event_timestamp"].dt.tz_localize(None).to_numpy())
    mart.insert(0, "user_id", active["user_id"].to_numpy())
    return mart


def _publish(settings: Settings, frame: pd.DataFrame) -> None:
    """Mart snapshots where publish_marts writes them: user_features (v2), v1, items, labels."""
    v2 = frame.drop(columns=["label"]).rename(columns={"event_timestamp": "cutoff_time"})
    v2["cutoff_time"] = v2["cutoff_time"].dt.tz_localize(None)
    write_mart(settings, USER_TABLE, v2)
    write_mart(settings, USER_V1_TABLE, _v1_mart(frame))
    write_mart(settings, ITEM_TABLE, [feature_row(ITEM_TABLE, "i1", "2026-01-05", 1.0)])
    write_labels(settings, [
        (user, str(stamp.tz_localize(None)), int(label))
        for user, stamp, label in frame[["user_id", "event_timestamp", "label"]].itertuples(index=False)
    ])


def _config(home: Path, service: str) -> Settings:
    return load_settings(home=home, training={"search_trials": 1, "families": ["baseline"]},
                         features={"feature_service": service})


def test_a_v1_champion_is_served_and_compared_with_a_v2_challenger_through_feast(
    settings: Settings,
) -> None:
    frame = synthetic_training_frame(rows=600, cutoffs=4, seed=5)
    _publish(settings, frame)
    applied = apply(settings)
    assert {PROPENSITY_V1, PROPENSITY_V2} <= set(applied.objects)
    assert {t["table"] for t in applied.exported} == {
        "user_features", "item_features", "user_features_v1"}

    built: dict[str, list[pd.DataFrame]] = {}

    def training_frame_for(service: str) -> pd.DataFrame:
        """Feast's point-in-time join through the named feature service (no stand-ins)."""
        out: pd.DataFrame = build_training_set(settings, load_label_entities(settings),
                                               feature_service=service)
        built.setdefault(service, []).append(out)
        return out

    # run 1: the catalogue is still v1; its baseline becomes the champion (forced: on so
    # few test rows the first-promotion floors are a coin toss, and are not the point here)
    v1_config = _config(settings.home_dir, PROPENSITY_V1)
    first = run_training(v1_config, training_frame_for=training_frame_for, run_id="run-v1",
                         force_promote=True, force_reason="the v1 champion of this test")
    champion = first.promoted_version
    assert champion is not None, first.decision.explanation
    champion_model = load_model(v1_config, champion)
    assert champion_model.feature_service == PROPENSITY_V1
    assert set(champion_model.feature_names) <= set(USER_V1_TABLE.feature_names)

    # the v1 champion is served through propensity_v1 from the online store
    materialized = materialize(settings)
    assert {v.view for v in materialized.views} == {
        "user_features_fv", "item_features_fv", "user_features_v1_fv"}
    latest = frame[frame["event_timestamp"] == frame["event_timestamp"].max()]
    users = latest["user_id"].tolist()[:5]
    runtime = ServingRuntime(v1_config, poll=False)
    runtime.start()
    try:
        served, probabilities, known = runtime.predict([*users, "stranger"])
    finally:
        runtime.stop()
    assert served.version == champion and served.feature_service == PROPENSITY_V1
    assert known.tolist() == [True] * len(users) + [False]
    # scored on the v1 values (the latest user_features_v1 rows), not on v2's
    v1_rows = _v1_mart(latest).set_index("user_id").loc[users]
    np.testing.assert_allclose(probabilities[:-1], champion_model.predict_proba(v1_rows))

    # run 2: the challenger trains on propensity_v2; gate 2 reads the champion through v1
    built.clear()
    second = run_training(_config(settings.home_dir, PROPENSITY_V2),
                          training_frame_for=training_frame_for, run_id="run-v2")
    assert set(built) == {PROPENSITY_V1, PROPENSITY_V2}  # one real Feast frame per service
    v1_frame, v2_frame = built[PROPENSITY_V1][-1], built[PROPENSITY_V2][-1]
    assert list(v1_frame.columns[3:]) == USER_V1_TABLE.feature_names
    assert list(v2_frame.columns[3:]) == USER_TABLE.feature_names
    # the same labelled rows on both sides, each with its own service's values
    pd.testing.assert_frame_equal(v1_frame[[*KEYS, "label"]], v2_frame[[*KEYS, "label"]])
    dormant = ~v1_frame["user_id"].isin(_v1_mart(frame)["user_id"])
    assert np.array_equal(v1_frame["events_lookback"].isna().to_numpy(), dormant.to_numpy())

    # the champion's gate-2 score is its score on the v1 frame's test rows (not on v2's)
    test_cutoff = v2_frame["event_timestamp"].max()
    on_v1 = champion_model.predict_proba(v1_frame[v1_frame["event_timestamp"] == test_cutoff])
    on_v2 = champion_model.predict_proba(v2_frame[v2_frame["event_timestamp"] == test_cutoff])
    assert not np.allclose(on_v1, on_v2)
    labels = v2_frame.loc[v2_frame["event_timestamp"] == test_cutoff, "label"].to_numpy()
    gate = second.gate
    assert gate.champion is not None
    assert gate.champion.metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, on_v1))
    assert gate.champion is not None and gate.champion.version == champion
    assert gate.decision.reference_role == "champion"
    assert gate.decision.reference_version == champion
    test_rows = int((v2_frame["event_timestamp"] == test_cutoff).sum())
    assert gate.champion.metrics["rows"] == gate.challenger.metrics["rows"] == test_rows
    assert ("own feature service 'propensity_v1'" in gate.decision.explanation
            and "'propensity_v2'" in gate.decision.explanation)
    assert load_model(v1_config, second.winner).feature_service == PROPENSITY_V2
    with Ledger(v1_config.ledger_url) as ledger:
        production = ledger.production()
    assert production is not None
    assert production.version == (second.winner if gate.decision.promote else champion)
