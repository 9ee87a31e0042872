"""Models through the real BentoML model store: save, list, load, and corrupt files."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.registry import (
    MODEL_FILE,
    ModelLoadError,
    list_models,
    load_model,
    model_info,
    save_model,
)
from shopflow.training.families.base import FitContext, FitData
from shopflow.training.model import PropensityModel
from shopflow.training.split import feature_columns, split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = pytest.mark.integration


def _fit(family: str) -> tuple[PropensityModel, object]:
    from shopflow.training.families import family_module

    frame = synthetic_training_frame(rows=1500, cutoffs=5, seed=3)
    split = split_by_cutoff(frame)
    columns = feature_columns(frame)
    x, y = frame[columns].to_numpy(float), frame["label"].to_numpy()
    data = FitData(x[split.train], y[split.train], x[split.validation], y[split.validation],
                   columns)
    module = family_module(family)
    ctx = FitContext(seed=1)
    fitted = module.fit(data, module.default_params(data, ctx), ctx)
    model = PropensityModel(family=family, feature_names=fitted.feature_names,
                            feature_service="propensity_v1", params=fitted.params,
                            predictor=fitted.predictor)
    return model, frame


@pytest.mark.parametrize("family", ["lightgbm", "torch"])
def test_save_load_round_trip_predicts_the_same(settings: Settings, family: str) -> None:
    model, frame = _fit(family)
    version = save_model(settings, model, metadata={
        "metrics": {"roc_auc": 0.81, "ece": float("nan")}, "run_id": "manual__1",
        "data_fingerprint": "f00", "config_hash": "c0ffee"})
    assert (settings.bentoml_home / "models" / "shopflow-propensity" / version).is_dir()

    loaded = load_model(settings, version)
    rows = frame.head(50)
    shuffled = rows[list(reversed(rows.columns))]  # column order must not matter
    np.testing.assert_allclose(loaded.predict_proba(shuffled), model.predict_proba(rows))
    assert loaded.family == family and loaded.feature_service == "propensity_v1"

    info = model_info(settings, version)
    assert info.metadata["metrics"] == {"roc_auc": 0.81}  # NaN dropped, not stored as junk
    assert info.metadata["run_id"] == "manual__1"
    assert info.metadata["code_version"]
    assert info.labels["family"] == family
    assert [m.version for m in list_models(settings)] == [version]


def test_predictions_tolerate_missing_values_and_columns(settings: Settings) -> None:
    model, frame = _fit("lightgbm")
    rows = frame.head(20).copy()
    rows.loc[rows.index[:5], "recency_days"] = np.nan
    partial = rows.drop(columns=["cart_rate", "monetary_30d"])
    p = model.predict_proba(partial)
    assert p.shape == (20,) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_corrupt_or_missing_model_raises_model_load_error(settings: Settings) -> None:
    model, _ = _fit("lightgbm")
    version = save_model(settings, model, metadata={"run_id": "r"})
    path = settings.bentoml_home / "models" / "shopflow-propensity" / version / MODEL_FILE
    path.write_bytes(b"\x80\x05not a pickle at all")
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        load_model(settings, version)
    path.unlink()
    with pytest.raises(ModelLoadError, match="has no model.pkl"):
        load_model(settings, version)
    with pytest.raises(ModelLoadError, match="not in the model store"):
        load_model(settings, "doesnotexist")


def test_two_homes_in_one_process_use_two_stores(settings: Settings, tmp_path) -> None:
    from shopflow.settings import load_settings

    model, _ = _fit("lightgbm")
    first = save_model(settings, model, metadata={})
    other = load_settings(home=tmp_path / "other_home")
    second = save_model(other, model, metadata={})
    assert [m.version for m in list_models(other)] == [second]
    assert [m.version for m in list_models(settings)] == [first]


@pytest.mark.parametrize("family", ["xgboost", "lightgbm", "torch"])
def test_compiled_predictor_is_stored_beside_the_model_and_loads(settings: Settings,
                                                                family: str) -> None:
    from shopflow.registry import COMPILED_FILE, load_compiled
    from shopflow.training.compiled import TOLERANCE, compile_checked

    model, frame = _fit(family)
    rows = model.matrix(frame.tail(300))
    compilation = compile_checked(model, rows, time_it=False)
    assert compilation.predictor is not None, compilation.facts
    version = save_model(settings, model, compiled=compilation.predictor,
                         metadata={"compiled": compilation.facts})
    assert (model_info(settings, version).path / COMPILED_FILE).is_file()
    stored = model_info(settings, version).metadata["compiled"]
    assert stored["inference"] == "compiled-numpy" and stored["max_abs_diff"] <= TOLERANCE
    assert stored["rows_checked"] > 300 and stored["method"].startswith("numpy-")

    loaded = load_compiled(settings, version)
    assert loaded is not None
    np.testing.assert_allclose(loaded.predict(rows), load_model(settings, version)
                               .predictor.predict(rows), rtol=0, atol=TOLERANCE)


def test_missing_or_corrupt_compiled_predictor(settings: Settings) -> None:
    from shopflow.registry import COMPILED_FILE, load_compiled
    from shopflow.serving.served import load_served_model

    model, _ = _fit("lightgbm")
    plain = save_model(settings, model, metadata={"base_rate": 0.3})
    assert load_compiled(settings, plain) is None
    served = load_served_model(settings, plain)
    assert served.inference == "library" and "no compiled predictor" in served.inference_reason

    (model_info(settings, plain).path / COMPILED_FILE).write_bytes(b"\x80\x05junk")
    with pytest.raises(ModelLoadError, match="compiled predictor .* could not be loaded"):
        load_compiled(settings, plain)
    served = load_served_model(settings, plain)  # the model itself still serves
    assert served.compiled is None and "could not be loaded" in served.inference_reason
