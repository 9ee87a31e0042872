"""Online features for the service, through the Feast part's entry points.

One narrow adapter, so the service depends on two functions of ``shopflow.features``
(``get_online_user_features`` and ``store.get_store``) and nothing else of Feast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from shopflow.serving.served import ModelRefused

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class OnlineFeatures:
    """Reads one row of online features per user id, in request order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader: Any = None
        self._store: Any = None
        # Feast's get_feature_service reads and deserialises the registry row on every call
        # (allow_cache=False by default), ~15 ms here: the definitions are cached per
        # service and re-read whenever a model is checked (check_service).
        self._services: dict[str, Any] = {}

    def store(self) -> Any:
        """The Feast part's shared store for these settings, looked up once."""
        if self._store is None:
            from shopflow.features.store import shared_store

            self._store = shared_store(self.settings)
        return self._store

    def get(self, user_ids: Sequence[str], feature_service: str) -> pd.DataFrame:
        """Features of ``user_ids`` from ``feature_service`` (unknown ids: ``known`` False)."""
        if self._reader is None:
            from shopflow.features.online import get_online_user_features

            self._reader = get_online_user_features
        frame = self._reader(self.settings, list(user_ids), feature_service=feature_service,
                             store=self.store())
        if len(frame) != len(user_ids):
            raise RuntimeError(
                f"online store returned {len(frame)} rows for {len(user_ids)} user ids"
            )
        return frame

    def matrix(
        self, user_ids: Sequence[str], feature_service: str, feature_names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same features as :meth:`get`, straight into a float64 matrix.

        The serving hot path: one Feast ``get_online_features`` call through the Feast
        part's shared store, read from the response protobuf without building dicts and
        pandas frames (which cost several times the lookup itself). Same rules as
        ``shopflow.features.online``: a user is known when every feature is PRESENT with a
        real timestamp; unknown rows are NaN. The runtime checks, for every model it loads,
        that this gives exactly what :meth:`get` gives before it relies on it.

        Returns:
            ``(matrix, known)``: ``len(user_ids) x len(feature_names)`` and ``len(user_ids)``.
        """
        from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

        store = self.store()
        service = self._services.get(feature_service)
        if service is None:
            service = self._services[feature_service] = store.get_feature_service(
                feature_service, allow_cache=True)
        response = store.get_online_features(
            features=service, entity_rows=[{"user_id": uid} for uid in user_ids]
        )
        proto = response.proto
        position = {name: i for i, name in enumerate(proto.metadata.feature_names.val)}
        n = len(user_ids)
        out = np.full((n, len(feature_names)), np.nan, dtype=np.float64)
        known = np.ones(n, dtype=bool)
        present = FieldStatus.PRESENT
        for ref, i in position.items():
            if ref == "user_id":
                continue
            vector = proto.results[i]
            for row, (status, stamp) in enumerate(zip(vector.statuses, vector.event_timestamps,
                                                      strict=True)):
                if status != present or (stamp.seconds == 0 and stamp.nanos == 0):
                    known[row] = False
        for j, name in enumerate(feature_names):
            i = position.get(name)
            if i is None:
                continue
            values = proto.results[i].values
            column = out[:, j]
            for row in range(n):
                if known[row]:
                    value = values[row]
                    kind = value.WhichOneof("val")
                    if kind is not None:
                        column[row] = float(getattr(value, kind))
        out[~known] = np.nan
        return out, known

    def check_service(self, feature_service: str, feature_names: Sequence[str]) -> None:
        """Prove that Feast serves ``feature_service`` and that it has the model's columns.

        Raises:
            ModelRefused: the service is unknown to Feast or lacks some of the columns.
        """
        try:
            store = self.store()
            store.refresh_registry()
            service = store.get_feature_service(feature_service)
        except Exception as exc:  # Feast raises its own hierarchy (FeatureServiceNotFound...)
            raise ModelRefused(
                f"feature service {feature_service!r} is not available in Feast: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        served = {
            feature.name
            for projection in service.feature_view_projections
            for feature in projection.features
        }
        missing = [name for name in feature_names if name not in served]
        if missing:
            raise ModelRefused(
                f"feature service {feature_service!r} does not serve {len(missing)} of the "
                f"model's features, e.g. {missing[:5]}"
            )
        self._services[feature_service] = service

    def reachable(self, feature_service: str, feature_names: Sequence[str]) -> tuple[bool, str]:
        """Whether the online store answers a lookup now (for /readyz)."""
        try:
            self.matrix(["__shopflow_readyz__"], feature_service, feature_names)
        except Exception as exc:  # readiness must report, not raise
            return False, f"online features unreachable: {type(exc).__name__}: {exc}"
        return True, "ok"
