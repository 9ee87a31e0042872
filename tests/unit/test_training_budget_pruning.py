"""A fixed, data-scaled trial budget (no machine-load dependence) and train-time pruning."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from shopflow.settings import load_settings
from shopflow.training.families.bgnbd import REQUIRED_FEATURES, MissingInputsError
from shopflow.training.pipeline import train_family
from shopflow.training.prune import prune_features
from shopflow.training.search import trial_budget
from shopflow.training.split import split_by_cutoff
from shopflow.training.synthetic import synthetic_training_frame

if TYPE_CHECKING:
    import pandas as pd


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return synthetic_training_frame(rows=900, cutoffs=4, seed=23)


def test_trial_budget_is_fixed_by_the_data_size() -> None:
    assert trial_budget(100) == 12 and trial_budget(40_000) == 5
    assert trial_budget(5_000_000) == 4


@pytest.mark.parametrize("family", ["baseline", "xgboost", "lightgbm"])
def test_two_runs_with_the_same_seed_give_identical_metrics(frame: pd.DataFrame,
                                                            family: str) -> None:
    config = load_settings(training={"seed": 7})  # search_trials unset: the data's budget
    first = train_family(config, family, frame, "run-a", dry_run=True)
    second = train_family(config, family, frame, "run-b", dry_run=True)
    budget = first.info["search"]
    rows = len(split_by_cutoff(frame).train)
    assert budget["trials_planned"] == trial_budget(rows) == len(first.trials)
    assert not budget["time_box_hit"] and budget["rule"].startswith("trial_budget(")
    assert first.validation_metrics == second.validation_metrics
    assert first.params == second.params and first.trials[budget["best_trial"]]["params"] \
        == first.params


def test_a_time_box_that_cuts_the_search_is_reported(frame: pd.DataFrame) -> None:
    config = load_settings(training={"search_trials": 3, "search_seconds": 1e-9})
    result = train_family(config, "baseline", frame, "run", dry_run=True)
    assert result.info["search"]["time_box_hit"]
    assert result.info["search"]["trials_run"] == 1 < result.info["search"]["trials_planned"]


def test_constant_duplicate_and_near_duplicate_features_are_dropped(frame: pd.DataFrame
                                                                    ) -> None:
    rng = np.random.default_rng(0)
    wide = frame.assign(
        always_one=1.0,
        recency_copy=frame["recency_days"],
        recency_scaled=frame["recency_days"] * 2.0 + rng.normal(0, 1e-3, len(frame)),
    )
    config = load_settings(training={"search_trials": 1})
    result = train_family(config, "lightgbm", wide, "run", dry_run=True)
    dropped = {d["feature"]: d for d in result.info["pruning"]["dropped"]}
    assert dropped["always_one"]["reason"] == "constant"
    assert dropped["recency_copy"] == {"feature": "recency_copy", "reason": "identical",
                                       "to": "recency_days"}
    assert dropped["recency_scaled"]["reason"] == "near-duplicate"
    model = result.model
    assert model is not None and not set(dropped) & set(model.feature_names)
    assert "recency_days" in model.feature_names
    # serving feeds the kept subset: a frame without the dropped columns scores the same
    rows = wide.head(50)
    np.testing.assert_allclose(model.predict_proba(rows),
                               model.predict_proba(rows.drop(columns=list(dropped))))


def test_protected_columns_are_never_dropped() -> None:
    matrix = np.column_stack([np.arange(10.0), np.arange(10.0), np.ones(10)])
    pruning = prune_features(matrix, ["a", "b", "c"], protected=["b", "c"])
    assert pruning.kept == ["a", "b", "c"] and not pruning.dropped


def _with_lifetime_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Lifetime columns in which buyers to come bought more often and more recently (what
    BG/NBD ranks on). Columns unrelated to the label left the fit ill-posed: alpha ran to
    its bound and the scores came out constant on one machine and not on another."""
    rng = np.random.default_rng(1)
    label = frame["label"].to_numpy() > 0
    bought = (frame["is_returning_buyer"].to_numpy() > 0) | label
    first = frame["tenure_days"].fillna(200.0).to_numpy() + 30.0
    days = np.where(bought, 1 + rng.poisson(np.where(label, 6, 1), len(frame)), 0)
    last = np.where(label, rng.uniform(0, 0.3, len(frame)), rng.uniform(0.3, 1, len(frame)))
    return frame.assign(
        purchase_days_lifetime=days,
        days_since_first_purchase=np.where(bought, first, np.nan),
        days_since_last_purchase=np.where(bought, last * first, np.nan),
    )


def test_bgnbd_trains_as_a_candidate_and_fails_clearly_without_its_columns(
        frame: pd.DataFrame) -> None:
    config = load_settings()
    result = train_family(config, "bgnbd", _with_lifetime_columns(frame), "run", dry_run=True)
    assert result.model is not None and result.model.feature_names == list(REQUIRED_FEATURES)
    assert len(result.trials) == 1 and result.info["horizon_days"] == 30.0
    assert result.validation_metrics["roc_auc"] > 0.7 and not result.info["fit"]["at_bound"]
    without = frame.drop(columns=["purchase_days_lifetime"])
    with pytest.raises(MissingInputsError, match="purchase_days_lifetime"):
        train_family(config, "bgnbd", without, "run", dry_run=True)
