"""Feature services, versioned ``<model>_v<N>``: the names a trained model records."""

from __future__ import annotations

from shopflow.features.definitions import repo_definitions

propensity_v2 = repo_definitions().propensity_v2
item_ranking_v1 = repo_definitions().item_ranking_v1
propensity_v1 = repo_definitions().propensity_v1
