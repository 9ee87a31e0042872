"""The assets Shopflow's DAGs produce and wait for, defined once.

DAGs use these objects both as task ``outlets`` and as ``schedule``, so a renamed asset
cannot silently break the link between a producer and its consumers. The ``x-shopflow``
scheme marks them as Shopflow's own (Airflow leaves ``x-`` URIs as they are).
"""

from __future__ import annotations

from airflow.sdk import Asset

MARTS = Asset(
    name="shopflow_marts",
    uri="x-shopflow://warehouse/marts",
    group="shopflow",
    extra={"description": "Gated dbt marts (user_features, item_features, purchase_labels)."},
)
ONLINE_FEATURES = Asset(
    name="shopflow_online_features",
    uri="x-shopflow://feast/online",
    group="shopflow",
    extra={"description": "Feast online store materialized from the marts."},
)
PRODUCTION_MODEL = Asset(
    name="shopflow_production_model",
    uri="x-shopflow://models/production",
    group="shopflow",
    extra={"description": "The model holding the ledger's production alias."},
)
DRIFT_DETECTED = Asset(
    name="shopflow_drift_detected",
    uri="x-shopflow://monitoring/drift",
    group="shopflow",
    extra={"description": "Feature or prediction drift beyond the threshold: retrain."},
)

ALL_ASSETS = (MARTS, ONLINE_FEATURES, PRODUCTION_MODEL, DRIFT_DETECTED)
