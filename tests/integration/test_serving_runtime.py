"""The serving runtime in process: real Feast online store, model store and ledger."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopflow.contract import GOLDEN_UNKNOWN_ID
from shopflow.ledger import Ledger
from shopflow.serving.runtime import NoProductionModel, ServingRuntime
from shopflow.serving.sandbox import (
    publish_model,
    synthetic_user_features,
    train_tiny_model,
    write_online_features,
)
from shopflow.settings import Settings, load_settings

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[str]]:
    settings = load_settings(home=tmp_path_factory.mktemp("runtime") / "home",
                             serving={"shadow": True})
    settings.ensure_dirs()
    frame = synthetic_user_features(30, seed=1)
    write_online_features(settings, frame)
    return settings, frame["user_id"].tolist()


def _model(settings: Settings, seed: int, *, promote: bool = True, **kwargs: object) -> str:
    model, base_rate = train_tiny_model(synthetic_user_features(30, seed=1), seed=seed, **kwargs)
    return publish_model(settings, model, base_rate=base_rate, promote=promote)


def test_no_production_model_is_a_clear_unavailability(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "empty")
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        with pytest.raises(NoProductionModel, match="production alias is empty"):
            runtime.predict(["1"])
        ready, why = runtime.ready()
        assert not ready and "no model in production" in why
        assert runtime.metadata()["model_version"] is None
    finally:
        runtime.stop()


def test_swap_keeps_in_flight_model_and_refuses_broken_ones(online: tuple[Settings, list[str]]) -> None:
    from shopflow.registry import model_info

    settings, users = online
    first = _model(settings, 1)
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        served, probabilities, known = runtime.predict([users[0], "stranger"])
        assert served.version == first and known.tolist() == [True, False]
        assert probabilities[1] == pytest.approx(served.cold_start_probability)
        in_flight = runtime.current
        assert runtime.golden_user_ids() == [users[0], GOLDEN_UNKNOWN_ID]

        second = _model(settings, 2, c=3.0)
        runtime.poll_once()
        assert runtime.current.version == second and runtime.swaps == 2
        # the object a request picked up before the swap still scores as it did
        again, _ = in_flight.score(runtime.features.get([users[0], "stranger"], "propensity_v2"))
        assert np.array_equal(again, probabilities)

        broken = _model(settings, 3, promote=False)
        (Path(model_info(settings, broken).path) / "model.pkl").write_bytes(b"\x80\x04junk")
        Ledger(settings.ledger_url).promote(broken, actor="test", reason="corrupt")
        runtime.poll_once()
        runtime.poll_once()  # a refused version is not retried while the alias stays on it
        assert runtime.current.version == second
        refusals = [r for r in runtime.refusals if r.version == broken]
        assert len(refusals) == 1 and "could not be loaded" in refusals[0].reason
        assert runtime.predict([users[0]])[0].version == second
        rejected = Ledger(settings.ledger_url).events(kind="rejection", version=broken)
        assert len(rejected) == 1 and rejected[0].details["serving_version"] == second

        mismatch = _model(settings, 4, feature_service="propensity_v3")
        runtime.poll_once()
        assert runtime.current.version == second
        assert "propensity_v3" in runtime.refusals[-1].reason
        assert runtime.metadata()["refused"][-1]["version"] == mismatch
        ready, _ = runtime.ready()
        assert ready  # still serving the last good model
    finally:
        runtime.stop()


def test_shadow_scores_the_newest_candidate(online: tuple[Settings, list[str]]) -> None:
    from shopflow.serving.shadow import read_shadow_log

    settings, users = online
    champion = _model(settings, 5)
    challenger = _model(settings, 6, promote=False, c=0.05)
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        assert runtime.shadow is not None and runtime.shadow.challenger.version == challenger
        served, probabilities, _ = runtime.predict(users[:4])
        assert served.version == champion
    finally:
        runtime.stop()  # drains the shadow queue
    records = [r for r in read_shadow_log(settings.reports_dir) if r["challenger_version"] == challenger]
    assert len(records) == 4
    assert [r["champion"] for r in records] == pytest.approx(probabilities.tolist(), abs=1e-6)
    assert all(r["user"] not in users for r in records)
