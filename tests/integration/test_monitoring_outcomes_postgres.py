"""``served_outcomes`` on a real prediction log and a real PostgreSQL warehouse.

The log is written by the service's own writer (:class:`PredictionLog`); the staged
events are those of ``served_history`` (each user's purchase inside or around the label
window). Labels, maturity and the probe filter must come out as the staged events say.
"""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from served_history import AS_OF, stage_events
from shopflow.monitoring.outcomes import served_outcomes
from shopflow.privacy import IdHasher
from shopflow.serving.prediction_log import PROBE, PredictionLog, ServedPredict
from shopflow.settings import load_settings

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

NAMES = ("recency_days", "frequency")


def test_served_outcomes_on_postgres(tmp_path: Path, postgres_url: str,
                                     postgres_schema_prefix: str) -> None:
    settings = load_settings(home=tmp_path / "home", warehouse={
        "backend": "postgres", "postgres_url": postgres_url,
        "schema_prefix": postgres_schema_prefix})
    settings.ensure_dirs()
    horizon = settings.task.horizon
    users = [f"u{i}" for i in range(40)]
    labels = {uid: int(i % 3 == 0) for i, uid in enumerate(users)}
    stage_events(settings, users, labels, horizon=horizon)

    log = PredictionLog(settings, hash_id=IdHasher(settings.home_dir))
    as_of = AS_OF.replace(tzinfo=UTC).timestamp()
    later = (AS_OF + timedelta(days=40)).replace(tzinfo=UTC).timestamp()  # not matured
    features = np.ones((len(users), len(NAMES)))
    known = np.ones(len(users), dtype=bool)
    scores = np.linspace(0, 1, len(users))
    log.submit(ServedPredict("r-1", time.time(), "v1", users, scores, known, features, NAMES,
                             as_of))
    log.submit(ServedPredict("r-2", time.time(), "v1", users[:5], scores[:5], known[:5],
                             features[:5], NAMES, as_of, PROBE))
    log.submit(ServedPredict("r-3", time.time(), "v1", users[:4], scores[:4], known[:4],
                             features[:4], NAMES, later))
    log.close()

    frame = served_outcomes(settings)
    hasher = IdHasher(settings.home_dir)
    assert frame["request_id"].tolist() == ["r-1"] * len(users)  # no probe, none pending
    assert frame.attrs["pending"] == 4
    assert frame["label"].tolist() == [labels[uid] for uid in users]
    assert frame["user"].tolist() == [hasher(uid) for uid in users]
    assert (frame["as_of"] == pd.Timestamp(AS_OF, tz="UTC")).all()
    assert (frame["label_window_end"] == pd.Timestamp(AS_OF + horizon, tz="UTC")).all()
    assert frame["features"].iloc[0] == dict.fromkeys(NAMES, 1.0)
