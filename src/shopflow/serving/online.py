"""Online features for the service, through the Feast part's entry points.

One narrow adapter, so the service depends on two functions of ``shopflow.features``
(``get_online_user_features`` and ``store.get_store``) and nothing else of Feast.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shopflow.serving.alias_follower import ModelRefused

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)


class OnlineFeatures:
    """Reads one row of online features per user id, in request order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reader: Any = None
        self._store: Any = None

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
        frame: pd.DataFrame = self._reader(self.settings, list(user_ids),
                                           feature_service=feature_service, store=self.store())
        if len(frame) != len(user_ids):
            raise RuntimeError(
                f"online store returned {len(frame)} rows for {len(user_ids)} user ids"
            )
        return frame

    def matrix(
        self, user_ids: Sequence[str], feature_service: str, feature_names: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same features as :meth:`get`, straight into a float64 matrix.

        The serving hot path: the Feast part's direct online read (SQLite/Redis layout read
        without Feast's per-value protobuf work; Feast's ``get_online_features`` for other
        stores) straight into a matrix, without the pandas frame that costs more than the
        lookup. Unknown rows are NaN. The runtime checks, for every model it loads, that
        this gives exactly what :meth:`get` gives before it relies on it.

        Returns:
            ``(matrix, known)``: ``len(user_ids) x len(feature_names)`` and ``len(user_ids)``.
        """
        from shopflow.features.online import get_online_matrix
        from shopflow.features.schema import USER_TABLE

        return get_online_matrix(self.settings, USER_TABLE, user_ids,
                                 feature_service=feature_service, feature_names=feature_names,
                                 store=self.store())

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

    def reachable(self, feature_service: str, feature_names: Sequence[str]) -> tuple[bool, str]:
        """Whether the online store answers a lookup now (for /readyz)."""
        try:
            self.matrix(["__shopflow_readyz__"], feature_service, feature_names)
        except Exception as exc:  # readiness must report, not raise
            return False, f"online features unreachable: {type(exc).__name__}: {exc}"
        return True, "ok"


def snapshot_user_ids(settings: Settings, n: int = 5) -> list[str]:
    """A few user ids from the Feast offline snapshot, when there is one (best effort):
    golden ids for the swap check and for gate 3 at service start."""
    try:
        import pyarrow.parquet as pq

        from shopflow.features.schema import USER_TABLE

        path = USER_TABLE.offline_path(settings)
        if not path.is_file():
            return []
        table = pq.read_table(path, columns=[USER_TABLE.join_key])
        ids = table.column(0).to_pylist()
        return [str(i) for i in dict.fromkeys(reversed(ids)) if i is not None][:n]
    except Exception as exc:  # golden ids are a nicety, never a reason to fail
        logger.info("no golden ids from the offline snapshot: %s", exc)
        return []
