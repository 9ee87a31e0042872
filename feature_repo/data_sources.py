"""Offline sources: validated Parquet snapshots of the dbt marts (timestamp ``cutoff_time``)."""

from __future__ import annotations

from shopflow.features.definitions import repo_definitions

user_features_source = repo_definitions().user_features_source
item_features_source = repo_definitions().item_features_source
user_features_v1_source = repo_definitions().user_features_v1_source
