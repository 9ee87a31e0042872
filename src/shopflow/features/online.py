"""Online feature reads for a batch of ids, in one call.

The serving path asks for many users at once; the answer is a frame with one row per
requested id, in request order, and unknown ids never raise: their features are null and
their ``known`` column is False. An id is *known* when the online store holds a row for it.

On SQLite and Redis the rows are read directly in Feast's layout
(:mod:`shopflow.features.online_read`, one round trip, no per-value protobuf objects);
``direct=False`` (and any other online store) uses Feast's stock
``FeatureStore.get_online_features`` (there, Feast marks a found value PRESENT with a
real event timestamp; Redis returns empty fields with a zero timestamp for a missing
hash, which also counts as unknown). Tests hold both paths to the same answers.

Pass a long-lived ``store`` (or let :func:`shopflow.features.store.shared_store` keep one
per configuration): it caches the registry, so a read costs one online-store round trip.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from shopflow.features.definitions import ITEM_SERVICE
from shopflow.features.schema import ITEM_TABLE, USER_TABLE, FeatureTable

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd
    from feast import FeatureStore

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

KNOWN_COLUMN = "known"


def _clean_ids(ids: Sequence[object], join_key: str) -> list[str]:
    if isinstance(ids, str | bytes):
        raise TypeError(f"{join_key}s must be a list of ids, not a single string")
    clean = []
    for position, value in enumerate(ids):
        if value is None or (isinstance(value, float) and value != value):
            raise ValueError(f"{join_key}s[{position}] is null")
        text = str(value).strip()
        if not text:
            raise ValueError(f"{join_key}s[{position}] is empty")
        clean.append(text)
    return clean


_SERVICE_CACHE_SECONDS = 60.0
_services: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, Any, list[str]]]] = (
    weakref.WeakKeyDictionary()
)


def _resolve_service(store: FeatureStore, name: str) -> tuple[Any, list[str]]:
    """The feature service and its feature names, cached per store for a minute.

    Feast rebuilds (and type-checks) a FeatureService from the cached registry proto on
    every lookup, which costs more than the online read itself; services are versioned
    and immutable by convention, so a short cache is safe.
    """
    now = time.monotonic()
    cache = _services.setdefault(store, {})
    hit = cache.get(name)
    if hit is not None and now - hit[0] < _SERVICE_CACHE_SECONDS:
        return hit[1], hit[2]
    service = store.get_feature_service(name, allow_cache=True)
    names = [f.name for p in service.feature_view_projections for f in p.features]
    cache[name] = (now, service, names)
    return service, names


def _read_feast(
    store: FeatureStore, service: Any, names: list[str], join_key: str, ids: list[str]
) -> tuple[Any, Any]:
    """``(known, values)`` through Feast's stock ``get_online_features``."""
    import numpy as np
    from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

    known = np.ones(len(ids), dtype=bool)
    values = np.full((len(ids), len(names)), np.nan)
    response = store.get_online_features(features=service, entity_rows=[{join_key: i} for i in ids])
    proto = response.proto
    column = {name: j for j, name in enumerate(names)}
    present = FieldStatus.PRESENT
    for ref, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        j = column.get(ref)
        if j is None:
            continue
        for row, (status, stamp, value) in enumerate(
            zip(vector.statuses, vector.event_timestamps, vector.values, strict=True)
        ):
            if status != present or (stamp.seconds == 0 and stamp.nanos == 0):
                known[row] = False
            elif value.WhichOneof("val") == "double_val":
                values[row, j] = value.double_val
    return known, values


_readers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_views: weakref.WeakKeyDictionary[
    Any, dict[tuple[str, str, tuple[str, ...] | None], tuple[float, Any, list[str]]]
] = (
    weakref.WeakKeyDictionary()
)


def _read_direct(store: FeatureStore, service: Any, ids: list[str],
                 wanted: Sequence[str] | None = None) -> tuple[Any, Any, list[str]]:
    """``(known, values, names)`` of the service's views, read directly; known in every view.

    Only the ``wanted`` columns are read (all of them when None): a model rarely reads
    every column its service serves, and on SQLite (one row per entity and feature) the
    rows fetched are most of a large request's cost. A view none of whose columns is
    wanted still has its first column read, so that "known" keeps meaning "has a row in
    every view of the service".
    """
    import numpy as np

    from shopflow.features.online_read import DirectReader

    reader = _readers.get(store)
    if reader is None:
        reader = _readers.setdefault(store, DirectReader(store))
    views = _views.setdefault(store, {})
    wanted_key = None if wanted is None else tuple(wanted)
    knowns = []
    parts = []
    names: list[str] = []
    now = time.monotonic()
    for projection in service.feature_view_projections:
        key = (service.name, projection.name, wanted_key)
        hit = views.get(key)
        if hit is None or now - hit[0] >= _SERVICE_CACHE_SECONDS:
            if len(views) > 256:  # a bounded memo: stale services' entries go
                views.clear()
            served = [f.name for f in projection.features]
            chosen = served if wanted is None else [n for n in served if n in set(wanted)]
            hit = (now, store.get_feature_view(projection.name, allow_registry_cache=True),
                   chosen or served[:1])
            views[key] = hit
        view_names = hit[2]
        view_known, values = reader.read(hit[1], view_names, ids)
        knowns.append(view_known)
        parts.append(values)
        names.extend(view_names)
    if len(parts) == 1:  # one view (the usual case): its cached names, no copies
        return knowns[0], parts[0], view_names
    return np.logical_and.reduce(knowns), np.hstack(parts), names


def get_online_features_frame(
    settings: Settings,
    table: FeatureTable,
    ids: Sequence[object],
    *,
    feature_service: str,
    store: FeatureStore | None = None,
    direct: bool = True,
) -> pd.DataFrame:
    """Online features of one entity type for a batch of ids (see the module docstring).

    Args:
        direct: read SQLite/Redis with :class:`~shopflow.features.online_read.DirectReader`
            (same values, a fraction of the cost); False: Feast's ``get_online_features``.
    """
    import pandas as pd

    from shopflow.features.store import shared_store

    join_key = table.join_key
    clean = _clean_ids(ids, join_key)
    store = store or shared_store(settings)
    _, names = _resolve_service(store, feature_service)
    values, known = get_online_matrix(settings, table, clean, feature_service=feature_service,
                                      feature_names=names, store=store, direct=direct)
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, KNOWN_COLUMN, known)
    frame.insert(0, join_key, pd.Series(clean, dtype=object))
    return frame


def get_online_matrix(
    settings: Settings,
    table: FeatureTable,
    ids: Sequence[object],
    *,
    feature_service: str,
    feature_names: Sequence[str],
    store: FeatureStore | None = None,
    direct: bool = True,
) -> tuple[Any, Any]:
    """The values of :func:`get_online_features_frame` as ``(matrix, known)``, no pandas.

    The serving hot path: a model wants a float64 matrix in its own column order, and
    building a DataFrame per request costs more than the direct read itself. Columns the
    service does not serve are NaN (the caller's model check refuses such a model first).
    """
    import numpy as np

    from shopflow.features.online_read import DirectReader
    from shopflow.features.store import shared_store

    clean = _clean_ids(ids, table.join_key)
    store = store or shared_store(settings)
    service, names = _resolve_service(store, feature_service)
    if not clean:
        return np.full((0, len(feature_names)), np.nan), np.ones(0, dtype=bool)
    if direct and DirectReader.supports(store):
        known, values, names = _read_direct(store, service, clean, feature_names)
    else:
        known, values = _read_feast(store, service, names, table.join_key, clean)
    take, served, identity = _column_positions(store, names, feature_names)
    if identity:  # the reader gave the model's columns in the model's order: no copy
        out = values
    else:
        out = np.full((len(clean), len(feature_names)), np.nan)
        out[:, served] = values[:, take[served]]
    if not known.all():
        out[~known] = np.nan
    return out, known


_positions: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()
_LAST = "last"  # the memo's entry for the previous request's (names, feature_names, take)


def _column_positions(store: FeatureStore, names: list[str], feature_names: Sequence[str]) -> Any:
    """``(take, served, identity)``: the index of each wanted column among the columns read
    (-1: not served), which are served, and whether ``take`` is the identity; cached.

    Looked up once per (service columns, model columns): a model asks for the same columns on
    every request, and mapping 70 names costs more than a one-user read.
    """
    import numpy as np

    cache = _positions.setdefault(store, {})
    last = cache.get(_LAST)
    if last is not None and last[0] is names and last[1] is feature_names:
        return last[2]  # the same cached lists as the previous request: no key to build
    key = (tuple(names), tuple(feature_names))
    take = cache.get(key)
    if take is None or len(cache) > 64:
        if len(cache) > 64:  # a bounded memo: stale services' entries go
            cache.clear()
        position = {name: j for j, name in enumerate(names)}
        positions = np.array([position.get(name, -1) for name in feature_names],
                            dtype=np.int64)
        take = (positions, positions >= 0,
                len(names) == len(positions)
                and bool(np.array_equal(positions, np.arange(len(positions)))))
        cache[key] = take
    cache[_LAST] = (names, feature_names, take)
    return take


def get_online_user_features(
    settings: Settings,
    user_ids: Sequence[object],
    *,
    feature_service: str | None = None,
    store: FeatureStore | None = None,
    direct: bool = True,
) -> pd.DataFrame:
    """Latest online user features for many users in one call.

    Args:
        settings: the run's settings.
        user_ids: ids (text; numbers are converted); duplicates are allowed.
        feature_service: default ``settings.features.feature_service`` (``propensity_v2``).
        store: a FeatureStore to reuse; default one shared per configuration.
        direct: read the SQLite/Redis layout directly (default) or via Feast's
            ``get_online_features`` (same values; slower).

    Returns:
        ``user_id, known, <features...>``: one row per requested id, in order; unknown
        ids have ``known`` False and null features.

    Raises:
        ValueError: an id is null or empty. TypeError: ``user_ids`` is a single string.
    """
    return get_online_features_frame(
        settings,
        USER_TABLE,
        user_ids,
        feature_service=feature_service or settings.features.feature_service,
        store=store,
        direct=direct,
    )


def get_online_item_features(
    settings: Settings,
    item_ids: Sequence[object],
    *,
    feature_service: str = ITEM_SERVICE,
    store: FeatureStore | None = None,
    direct: bool = True,
) -> pd.DataFrame:
    """Latest online item features for many items (``item_id, known, <features...>``)."""
    return get_online_features_frame(
        settings, ITEM_TABLE, item_ids, feature_service=feature_service, store=store,
        direct=direct,
    )
