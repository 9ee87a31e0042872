"""The registry of stages: every name a DAG task can run, and the function it runs.

A DAG task says ``stage("dbt_layer", layer="marts")``; :func:`shopflow.pipeline.tasks.run_stage`
looks the name up here, and the entry points straight at the function. So from a DAG
task to its code is two hops: this table, then the stage module beside it:

* :mod:`shopflow.pipeline.data_stages` — plan, ingest, gate 1, dbt, publish, Feast;
* :mod:`shopflow.pipeline.model_stages` — training set, candidates, evaluation, gates 2
  and 3, register, deploy, rollback;
* :mod:`shopflow.pipeline.recommend_stages` — the recommender branch;
* :mod:`shopflow.pipeline.monitoring_stages` — drift, the drift verdict, gate 4, skew,
  staleness, the A/B and shadow readouts.

Importing the stage modules is cheap: each imports its heavy libraries inside the stage.
The registry imports them; none of them imports the registry (the words they share are in
:mod:`shopflow.pipeline.vocabulary`).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from shopflow.pipeline import data_stages, model_stages, monitoring_stages, recommend_stages

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.pipeline.vocabulary import StageFunction

#: Stage name -> stage function, for every DAG (read-only).
STAGES: Mapping[str, StageFunction] = MappingProxyType({
    # data: shopflow_training, shopflow_features
    "plan": data_stages.plan,
    "ingest": data_stages.ingest,
    "quality_gate": data_stages.quality_gate,
    "dbt_layer": data_stages.dbt_layer,
    "publish_marts": data_stages.publish_marts,
    "feast_apply": data_stages.feast_apply,
    "feast_materialize": data_stages.feast_materialize,
    # models: shopflow_training, shopflow_rollback
    "training_set": model_stages.training_set,
    "train_candidate": model_stages.train_candidate,
    "evaluate": model_stages.evaluate,
    "champion_gate": model_stages.champion_gate,
    "register": model_stages.register,
    "deploy": model_stages.deploy,
    "post_deploy_check": model_stages.post_deploy_check,
    "rollback": model_stages.rollback,
    # recommendations: shopflow_training
    "train_recommender": recommend_stages.train_recommender,
    # monitoring: shopflow_monitoring
    "feature_drift": monitoring_stages.feature_drift,
    "prediction_drift": monitoring_stages.prediction_drift,
    "drift_verdict": monitoring_stages.drift_verdict,
    "live_gate": monitoring_stages.live_gate,
    "skew_check": monitoring_stages.skew_check,
    "staleness": monitoring_stages.staleness,
    "experiment_readout": monitoring_stages.experiment_readout,
    "shadow_readout": monitoring_stages.shadow_readout,
})


def stage_function(name: str) -> StageFunction:
    """The function of stage ``name``.

    Raises:
        KeyError: no stage has that name (the message lists the names there are).
    """
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None
