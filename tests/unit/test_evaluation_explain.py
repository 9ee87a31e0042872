"""Evaluation work is bounded: SHAP on a fixed sample, metrics on every held-out row."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from shopflow.evaluation.evaluate import evaluate_model, shap_sample
from shopflow.evaluation.explain import global_importance
from shopflow.evaluation.report import write_report
from shopflow.privacy import id_hasher
from shopflow.settings import EXPLAIN_ROWS, load_settings
from shopflow.training.pipeline import train_family
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    from shopflow.settings import Settings
    from shopflow.training.model import PropensityModel


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    # two cutoffs of ~1,500 rows at the end, so the held-out part is larger than the sample
    return synthetic_training_frame(rows=6000, cutoffs=4, seed=9)


@pytest.fixture(scope="module")
def model(frame: pd.DataFrame) -> PropensityModel:
    quick = load_settings(training={"search_trials": 1})
    result = train_family(quick, "lightgbm", frame, "explain", dry_run=True)
    assert result.model is not None
    return result.model


def test_shap_sample_is_bounded_deterministic_and_in_frame_order(frame: pd.DataFrame) -> None:
    sample = shap_sample(frame)
    assert len(sample) == EXPLAIN_ROWS
    pd.testing.assert_frame_equal(sample, shap_sample(frame))
    assert sample.index.is_monotonic_increasing and sample.index.is_unique
    small = frame.head(50)
    assert shap_sample(small) is small  # nothing to bound


def test_metrics_use_every_row_and_importance_the_sample(frame: pd.DataFrame,
                                                         model: PropensityModel) -> None:
    held_out = frame.iloc[split_by_cutoff(frame, validation_cutoffs=1, test_cutoffs=2).test]
    held_out = held_out.reset_index(drop=True)
    assert len(held_out) > EXPLAIN_ROWS
    evaluation = evaluate_model(model, held_out, version="v1")
    assert evaluation.metrics["rows"] == len(held_out)
    assert sum(b["count"] for b in evaluation.calibration) == len(held_out)
    expected = global_importance(model, shap_sample(held_out))
    assert evaluation.importance == expected and len(expected) > 0
    # the sample's ranking agrees with the full one on the strongest features
    full = global_importance(model, held_out)
    assert {r["feature"] for r in expected[:3]} & {r["feature"] for r in full[:3]}
    assert len(evaluation.examples) == 5
    top = np.sort(model.predict_proba(held_out))[::-1][:5]
    np.testing.assert_allclose([e["probability"] for e in evaluation.examples], top)


def test_examples_name_users_by_pseudonym_in_the_evaluation_and_the_report(
        frame: pd.DataFrame, model: PropensityModel, settings: Settings) -> None:
    held_out = frame.iloc[split_by_cutoff(frame, validation_cutoffs=1, test_cutoffs=2).test]
    held_out = held_out.reset_index(drop=True)
    hash_id = id_hasher(settings)
    evaluation = evaluate_model(model, held_out, version="v1", hash_id=hash_id)
    tokens = {hash_id(u) for u in held_out["user_id"]}
    shown = [e["user_id"] for e in evaluation.examples]
    assert len(shown) == 5 and set(shown) <= tokens
    assert not set(shown) & set(held_out["user_id"])
    html = write_report(settings, "pseudonyms", [evaluation], winner="v1").read_text()
    assert all(f"<td>{t}</td>" in html for t in shown)
    assert "<td>u0" not in html  # no raw synthetic id (u000123) in any cell
    # without a hasher the examples name nobody (the report shows a dash)
    assert all("user_id" not in e for e in evaluate_model(model, held_out, version="v1").examples)


def test_explanations_use_every_row_up_to_the_cap_and_say_so(
        frame: pd.DataFrame, model: PropensityModel, settings: Settings) -> None:
    """``training.explain_rows`` caps the importance rows: at or below it every row is
    explained (the same importance as on the whole frame), above it a seeded sample; the
    evaluation and its report say how many rows of how many."""
    held_out = frame.iloc[split_by_cutoff(frame, validation_cutoffs=1, test_cutoffs=2).test]
    held_out = held_out.reset_index(drop=True)
    rows = len(held_out)
    assert load_settings().training.explain_rows == EXPLAIN_ROWS < rows
    hash_id = id_hasher(settings)
    whole = evaluate_model(model, held_out, version="v1", explain_rows=rows, hash_id=hash_id)
    assert whole.importance == global_importance(model, held_out)
    assert whole.explained == {"rows": rows, "of": rows, "max_rows": rows, "sampled": False,
                               "seed": None}
    capped = evaluate_model(model, held_out, version="v1", explain_rows=300, hash_id=hash_id)
    assert capped.importance == global_importance(model, shap_sample(held_out, rows=300))
    assert capped.explained == {"rows": 300, "of": rows, "max_rows": 300, "sampled": True,
                                "seed": 0}
    # only the explanations are sampled: every metric, slice and interval is the same
    for name in ("metrics", "slices", "calibration", "curves", "uncertainty", "examples"):
        # as JSON text, where NaN (a one-class slice's AUC) equals NaN
        assert json.dumps(getattr(capped, name)) == json.dumps(getattr(whole, name)), name
    html = write_report(settings, "sampled", [capped, whole], winner="v1").read_text()
    assert f"on 300 of {rows:,} test rows: a seeded sample, training.explain_rows = 300" \
        in html
    assert f"on {rows:,} of {rows:,} test rows: all" in html


def test_explain_rows_is_a_typed_setting() -> None:
    assert load_settings(training={"explain_rows": 250}).training.explain_rows == 250
    with pytest.raises(ValueError, match="explain_rows"):
        load_settings(training={"explain_rows": 0})
