"""The serving runtime in process: real Feast online store, model store and ledger."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    import pandas as pd

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
        # changed after registration: refused by its sha256 before it is unpickled
        assert len(refusals) == 1 and "sha256" in refusals[0].reason
        assert runtime.predict([users[0]])[0].version == second
        rejected = Ledger(settings.ledger_url).events(kind="rejection", version=broken)
        assert {e.details.get("gate") or e.details.get("stage") for e in rejected} == {
            "integrity", "serving"}
        swap = next(e for e in rejected if e.details.get("stage") == "serving")
        assert swap.details["serving_version"] == second

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


def _xgboost_model(settings: Settings, frame: pd.DataFrame, *, promote: bool = True) -> str:
    """A real XGBoost model over the sandbox features, published with its compiled trees."""
    from shopflow.serving.sandbox import SANDBOX_FEATURES
    from shopflow.training.families import xgb
    from shopflow.training.families.base import FitContext, FitData
    from shopflow.training.model import PropensityModel

    x = frame.reindex(columns=list(SANDBOX_FEATURES)).to_numpy(dtype=np.float64)
    x[::4, 0] = np.nan
    y = (x[:, 2] + np.random.default_rng(0).normal(0, 2, len(x)) > 7).astype(int)
    data = FitData(x, y, x, y, list(SANDBOX_FEATURES))
    ctx = FitContext(seed=0)
    fitted = xgb.fit(data, {**xgb.default_params(data, ctx), "max_depth": 3}, ctx)
    model = PropensityModel(family="xgboost", feature_names=list(SANDBOX_FEATURES),
                            feature_service="propensity_v2", params=fitted.params,
                            predictor=fitted.predictor)
    return publish_model(settings, model, base_rate=float(y.mean()), promote=promote,
                         compile_rows=x)


def test_compiled_predictor_serves_small_batches_within_tolerance(
        online: tuple[Settings, list[str]]) -> None:
    from shopflow.training.compiled import TOLERANCE

    settings, users = online
    version = _xgboost_model(settings, synthetic_user_features(30, seed=1))
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        served, probabilities, known = runtime.predict(users[:3] + ["stranger"])
        assert served.version == version and served.fast_path
        model = runtime.metadata()["model"]
        assert model["inference"] == "compiled-numpy", model["inference_reason"]
        assert "agrees with the library" in model["inference_reason"]
        frame = runtime.features.get(users[:3], served.feature_service)
        library = served.model.predict_proba(frame)
        np.testing.assert_allclose(probabilities[:3], library, rtol=0, atol=TOLERANCE)
        assert known.tolist() == [True, True, True, False]
    finally:
        runtime.stop()


def test_a_tampered_compiled_predictor_is_refused_and_the_library_serves(
        online: tuple[Settings, list[str]]) -> None:
    import dataclasses
    import pickle

    from shopflow.registry import COMPILED_FILE, model_info

    settings, users = online
    version = _xgboost_model(settings, synthetic_user_features(30, seed=1), promote=False)
    path = Path(model_info(settings, version).path) / COMPILED_FILE
    compiled = pickle.loads(path.read_bytes())
    trees = compiled.raw
    value = trees.value.copy()
    value[np.flatnonzero(trees.left == np.arange(len(trees.left)))[0]] += 0.5  # one leaf
    path.write_bytes(pickle.dumps(dataclasses.replace(
        compiled, raw=dataclasses.replace(trees, value=value))))
    # registered as it is now (the digest matches): a compiled predictor that disagrees
    # with the library, as after a library upgrade; the swap check must catch it
    from shopflow.registry import model_digests

    with Ledger(settings.ledger_url) as ledger:
        with ledger.engine.begin() as conn:
            conn.execute(ledger._candidates.update()
                         .where(ledger._candidates.c.version == version)
                         .values(artefacts=model_digests(settings, version)))
        ledger.promote(version, actor="test", reason="tampered compiled")

    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        served, probabilities, _ = runtime.predict(users[:5])
        assert served.version == version  # the model serves ...
        model = runtime.metadata()["model"]
        assert model["inference"] == "library"  # ... through its library predictor
        assert "refused at swap" in model["inference_reason"]
        frame = runtime.features.get(users[:5], served.feature_service)
        np.testing.assert_array_equal(probabilities, served.model.predict_proba(frame))
    finally:
        runtime.stop()


def test_a_model_without_a_compiled_predictor_says_why(online: tuple[Settings, list[str]]
                                                        ) -> None:
    settings, users = online
    model, base_rate = train_tiny_model(synthetic_user_features(30, seed=1), seed=9)
    version = publish_model(settings, model, base_rate=base_rate, compiled=False)
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        served, _, _ = runtime.predict(users[:2])
        assert served.version == version and served.compiled is None
        model_facts = runtime.metadata()["model"]
        assert model_facts["inference"] == "library"
        assert "no compiled predictor stored" in model_facts["inference_reason"]
    finally:
        runtime.stop()


def test_ab_challenger_follows_the_ledger(online: tuple[Settings, list[str]]) -> None:
    """The A/B test's challenger: the newest candidate registered after production,
    paused while a candidate is deploy pending, ended by the ledger's decision."""
    from shopflow.serving.experiment import CHALLENGER, assign_arm

    settings, users = online
    ab = load_settings(home=settings.home_dir, serving={"experiment": {
        "enabled": True, "share": 0.5, "salt": "rt"}})
    champion = _model(ab, 20)
    challenger = _model(ab, 21, promote=False)
    runtime = ServingRuntime(ab, poll=False)
    runtime.start()
    ledger = Ledger(ab.ledger_url)
    try:
        assert runtime.experiment is not None and runtime.experiment_state == "running"
        assert runtime.experiment.challenger.version == challenger
        rows = runtime.experiment.challenger_rows(users)
        assert rows == [i for i, u in enumerate(users) if assign_arm("rt", u, 0.5) == CHALLENGER]
        probabilities, known, matrix = runtime.score_with_features(
            runtime.experiment.challenger, [users[i] for i in rows])
        assert known.all() and matrix.shape[0] == len(rows)

        newer = _model(ab, 22, promote=False)
        ledger.nominate(newer, actor="test", reason="gate 2 elsewhere")
        runtime.poll_once()
        assert runtime.experiment is None and runtime.experiment_state.startswith("paused")
        assert runtime.metadata()["experiment"]["state"].startswith("paused")
        ledger.drop_candidate(newer, actor="test", reason="withdrawn")
        runtime.poll_once()
        assert runtime.version == champion
        assert runtime.experiment is not None and runtime.experiment.challenger.version == newer

        ledger.record_event(kind="rejection", version=newer, reason="A/B stop", actor="test",
                            details={"stage": "experiment", "decision": "stop"})
        runtime.poll_once()
        assert runtime.experiment is not None and runtime.experiment.challenger.version == challenger

        ledger.promote(challenger, actor="test", reason="A/B promote")
        runtime.poll_once()
        assert runtime.version == challenger and runtime.experiment is None
        assert runtime.metadata()["experiment"]["challenger_version"] is None
    finally:
        ledger.close()
        runtime.stop()
