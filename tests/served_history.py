"""Shared set-ups of the integration tests that need a served history.

:func:`build_served_history` gives a real production state whose *shop time* is in the
past, as after a pipeline run over a historical export: user features at one cutoff
(:data:`AS_OF`) in Feast's offline file and materialized online (so the service's
``as_of`` is that cutoff), a "good" model promoted in the ledger, and the warehouse's
staged events holding each user's purchases after the cutoff, drawn from the good
model's own probabilities (so the labels are known and the good model is truly good),
plus later events so every label window has matured. Tests serve it with a real
``bentoml serve`` (:class:`ServedHistory.serve`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from shopflow.settings import Settings, load_settings

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from shopflow.serving.process import ServiceProcess
    from shopflow.training.model import PropensityModel

#: The shop time the served features describe (the materialization watermark).
AS_OF = datetime(2026, 1, 4)


@dataclass
class ServedHistory:
    """What :func:`build_served_history` set up.

    Attributes:
        settings / config: the state's settings and the YAML file the service reads.
        frame: the users' feature rows (offline and online).
        labels: user id -> 1 when the user buys in the label window after :data:`AS_OF`.
        good: the good model's version (in production).
        good_model: the good model itself (to build a degraded one from).
    """

    settings: Settings
    config: Path
    frame: pd.DataFrame
    labels: dict[str, int]
    good: str
    good_model: PropensityModel
    base_rate: float
    served: list[dict[str, Any]] = field(default_factory=list)

    @property
    def user_ids(self) -> list[str]:
        return self.frame["user_id"].tolist()

    def serve(self) -> ServiceProcess:
        """A started ``bentoml serve`` of this state (stop it when done)."""
        from shopflow.serving.process import ServiceProcess

        service = ServiceProcess(self.settings, config_path=self.config,
                                 inherit_shopflow_env=False)
        service.start(wait=180)
        return service

    def degraded_model(self) -> PropensityModel:
        """The good model with its scores inverted (every coefficient negated): what a
        broken model looks like to gate 4."""
        model = copy.deepcopy(self.good_model)
        logistic = model.predictor.pipeline[-1]
        logistic.coef_ = -logistic.coef_
        logistic.intercept_ = -logistic.intercept_
        return model

    def predict_all(self, client: httpx.Client, *, batch: int = 50) -> list[str]:
        """``/predict`` for every user in batches; returns the versions that answered."""
        versions = []
        ids = self.user_ids
        for start in range(0, len(ids), batch):
            response = client.post("/predict", json={"user_ids": ids[start:start + batch]})
            assert response.status_code == 200, response.text
            versions.append(response.json()["model_version"])
        return versions


def build_served_history(root: Path, *, users: int = 300, config: dict[str, Any] | None = None,
                         seed: int = 0) -> ServedHistory:
    """The state described in the module doc, under ``root/home``.

    Args:
        root: a fresh folder.
        users: how many shoppers.
        config: more settings (merged into the YAML the service and tests read).
        seed: features, model and purchases.
    """
    from shopflow.features.materialization import materialize
    from shopflow.features.schema import USER_TABLE
    from shopflow.features.store import apply_definitions, get_store
    from shopflow.serving.sandbox import (
        SANDBOX_FEATURES,
        publish_model,
        synthetic_user_features,
        train_tiny_model,
    )

    home = root / "home"
    path = root / "shopflow.yaml"
    path.write_text(yaml.safe_dump({
        "serving": {"reload_interval": 0.5, "prediction_log_flush_interval": 0.2},
        **(config or {}),
    }))
    settings = load_settings(path, home=home)
    settings.ensure_dirs()

    frame = synthetic_user_features(users, seed=seed)
    frame["cutoff_time"] = AS_OF
    frame["created_at"] = AS_OF  # known at its cutoff, as the export writes it
    store = get_store(settings)
    apply_definitions(settings, store=store)
    offline = USER_TABLE.offline_path(settings)
    offline.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(offline, index=False)
    materialize(settings, tables=[USER_TABLE], store=store)  # watermark = AS_OF

    good, base_rate = train_tiny_model(frame, seed=seed)
    rows = np.ascontiguousarray(frame[list(SANDBOX_FEATURES)].to_numpy(dtype=np.float64))
    version = publish_model(settings, good, base_rate=base_rate, compile_rows=rows,
                            reason="the good model")
    rng = np.random.default_rng(seed + 1)
    bought = rng.random(users) < good.predict_proba(frame)
    labels = dict(zip(frame["user_id"], bought.astype(int).tolist(), strict=True))
    stage_events(settings, frame["user_id"].tolist(), labels, horizon=settings.task.horizon)
    return ServedHistory(settings=settings, config=path, frame=frame, labels=labels,
                         good=version, good_model=good, base_rate=base_rate)


def stage_events(settings: Settings, user_ids: list[str], labels: dict[str, int], *,
                 horizon: timedelta) -> None:
    """``staging.stg_shop__events`` as dbt would leave it, for these users: a view of
    everyone before :data:`AS_OF`, a purchase inside the label window for each buyer, and
    for the others a purchase just before the window and one just after it (which also
    makes the warehouse's latest event later than every window's end)."""
    from shopflow.warehouse import connect

    events = []
    for i, uid in enumerate(user_ids):
        events.append((uid, AS_OF - timedelta(days=5), "view"))
        if labels[uid]:
            events.append((uid, AS_OF + timedelta(days=1 + i % 20), "purchase"))
        else:
            events.append((uid, AS_OF, "purchase"))  # at the cutoff: a feature, not a label
            events.append((uid, AS_OF + horizon + timedelta(hours=1), "purchase"))
    frame = pd.DataFrame(events, columns=["user_id", "event_time", "event_type"])
    frame.insert(0, "event_id", [f"e{i}" for i in range(len(frame))])
    with connect(settings) as wh:
        table = wh.table("staging", "stg_shop__events")
        wh.create_table(table, {"event_id": "text", "user_id": "text",
                                "event_time": "timestamp", "event_type": "text"})
        wh.append_df(table, frame)


def wait_for(condition: Any, *, what: str, bound: float = 120.0, every: float = 0.2) -> None:
    """Poll ``condition()`` until true; fail naming ``what`` past ``bound`` seconds (a
    bound against hanging, not a timing assertion)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {bound:.0f} s")
        time.sleep(every)
