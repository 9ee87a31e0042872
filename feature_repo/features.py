"""Feature views over the marts; TTL = the task's lookback (``task.lookback``)."""

from __future__ import annotations

from shopflow.features.definitions import repo_definitions

user_features_fv = repo_definitions().user_features_fv
item_features_fv = repo_definitions().item_features_fv
user_features_v1_fv = repo_definitions().user_features_v1_fv
