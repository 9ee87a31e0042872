"""A calibrated candidate through the real BentoML model store and SQLite ledger."""

from __future__ import annotations

import numpy as np
import pytest

from shopflow.ledger import Ledger
from shopflow.registry import load_compiled, load_model, model_info
from shopflow.settings import Settings, load_settings
from shopflow.training.compiled import TOLERANCE
from shopflow.training.pipeline import train_family
from shopflow.training.synthetic import synthetic_training_frame

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("family", ["xgboost", "torch"])
def test_saved_candidate_loads_calibrated_and_records_its_map(settings: Settings,
                                                              family: str) -> None:
    config = load_settings(training={"search_trials": 1})
    frame = synthetic_training_frame(rows=2000, cutoffs=5, seed=13)
    result = train_family(config, family, frame, "run-cal")
    assert result.model is not None and result.model.calibration is not None

    loaded = load_model(config, result.version)
    rows = frame.tail(200)
    np.testing.assert_array_equal(loaded.predict_proba(rows), result.model.predict_proba(rows))
    assert loaded.calibration == result.model.calibration
    # the stored model returns calibrated values, not the family's raw scores
    matrix = loaded.matrix(rows)
    assert not np.allclose(loaded.predictor.raw_predict(matrix), loaded.predict_proba(rows))

    info = model_info(config, result.version)
    # registration compiled it and checked it on the model's own test rows
    compiled = info.metadata["compiled"]
    assert compiled["test_rows"] == result.split["test"]["rows"] > 0
    assert compiled["inference"] == "compiled-numpy", compiled
    assert compiled["max_abs_diff"] <= TOLERANCE
    predictor = load_compiled(config, result.version)
    assert predictor is not None
    np.testing.assert_allclose(predictor.predict(matrix), loaded.predictor.predict(matrix),
                               rtol=0, atol=TOLERANCE)
    # the service's cold-start answer: the positive rate of the rows the model trained on
    base_rate = info.metadata["base_rate"]
    assert 0.0 < base_rate < 1.0
    assert base_rate == pytest.approx(frame["label"].mean(), abs=0.1)
    assert info.metadata["fit_info"]["calibration"]["method"] == result.info["calibration"][
        "method"]
    with Ledger(config.ledger_url) as ledger:
        candidate = ledger.candidate(result.version)
        assert candidate is not None
        assert candidate.metrics["validation_log_loss"] == pytest.approx(
            result.validation_metrics["log_loss"])
