"""Build Feast's ``RepoConfig`` and ``FeatureStore`` from Shopflow settings.

The configuration lives in code, derived from :class:`~shopflow.settings.Settings`, so a
run never depends on a hand-edited YAML: the SQL registry (SQLite in ``feast_dir`` by
default, any SQLAlchemy URL such as PostgreSQL via ``features.registry_url``), the
DuckDB offline store over Parquet, and the online store (SQLite in ``feast_dir`` or
Redis). ``feature_repo/feature_store.yaml`` says the same through environment variables
that :func:`feast_env` produces, for people who run the ``feast`` CLI.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from shopflow.redact import redact_url

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from shopflow.features.definitions import FeatureDefinitions
    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_REGISTRY_TTL_SECONDS = 60
"""How long a FeatureStore trusts its cached registry before re-reading it.

Online reads resolve feature services and views from this cache, so a long-lived
reader (the BentoML service) touches the registry database at most once a minute.
"""

_shared_lock = threading.Lock()
_shared_stores: dict[tuple[Any, ...], FeatureStore] = {}


class FeatureStoreError(RuntimeError):
    """Feast is misconfigured or a required object is missing from the registry."""


def registry_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the registry, with an explicit PostgreSQL driver.

    Feast rewrites a bare ``postgresql://`` to psycopg3 with a warning; saying so up
    front keeps logs clean and the driver choice visible.
    """
    url = settings.feast_registry_url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redis_connection_string(url: str) -> str:
    """Feast's ``host:port[,key=value...]`` form of a Redis address.

    Accepts Feast's own form unchanged and converts
    ``redis://[[user]:password@]host:port[/db]``: a user name logs in as that Redis ACL user
    (the deployment gives the pipeline and the model server users of their own; see
    docker/redis/). User name and password are percent-decoded.
    """
    if "://" not in url:
        return url
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"}:
        raise FeatureStoreError(f"features.redis_url has unsupported scheme {parsed.scheme!r}")
    parts = [f"{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}"]
    db = parsed.path.strip("/")
    if db:
        parts.append(f"db={int(db)}")
    if parsed.username:
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def online_sqlite_path(settings: Settings) -> str:
    """The SQLite online store file (when ``features.online_store == "sqlite"``)."""
    return str(settings.feast_dir / "online.db")


def repo_config(settings: Settings, *, registry_ttl_seconds: int = DEFAULT_REGISTRY_TTL_SECONDS) -> RepoConfig:
    """Feast's configuration for a run, built from settings only.

    Args:
        settings: the run's settings.
        registry_ttl_seconds: registry cache lifetime of stores built from this config.

    Returns:
        A ``RepoConfig`` with ``repo_path = settings.feast_dir``.
    """
    from feast.infra.offline_stores.duckdb import DuckDBOfflineStoreConfig
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.infra.registry.sql import SqlRegistryConfig
    from feast.repo_config import RepoConfig

    online: Any
    if settings.features.online_store == "redis":
        online = RedisOnlineStoreConfig(
            connection_string=redis_connection_string(settings.features.redis_url)
        )
    else:
        online = SqliteOnlineStoreConfig(path=online_sqlite_path(settings))
    registry = SqlRegistryConfig(
        registry_type="sql",
        path=registry_url(settings),
        cache_ttl_seconds=registry_ttl_seconds,
        sqlalchemy_config_kwargs={"echo": False, "pool_pre_ping": True},
    )
    return RepoConfig(
        project=settings.features.project,
        provider="local",
        registry=registry,
        offline_store=DuckDBOfflineStoreConfig(),
        online_store=online,
        entity_key_serialization_version=3,
        repo_path=settings.feast_dir,
    )


def get_store(settings: Settings, *, registry_ttl_seconds: int = DEFAULT_REGISTRY_TTL_SECONDS) -> FeatureStore:
    """A new ``FeatureStore`` for the run's settings (folders created).

    Hold on to the result for repeated reads: it caches the registry for
    ``registry_ttl_seconds`` and keeps its online-store connection open.
    """
    from feast import FeatureStore

    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    (settings.feast_dir / "data").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(settings, registry_ttl_seconds=registry_ttl_seconds))


def _store_key(settings: Settings) -> tuple[Any, ...]:
    return (
        str(settings.feast_dir),
        registry_url(settings),
        settings.features.project,
        settings.features.online_store,
        settings.features.redis_url,
        settings.task.lookback,
    )


def shared_store(settings: Settings) -> FeatureStore:
    """One ``FeatureStore`` per distinct Feast configuration in this process.

    Online reads called with only ``settings`` use this, so they never rebuild the store
    (and re-read the registry) per request.
    """
    key = _store_key(settings)
    with _shared_lock:
        store = _shared_stores.get(key)
        if store is None:
            store = get_store(settings)
            _shared_stores[key] = store
        return store


def clear_shared_stores() -> None:
    """Forget the stores :func:`shared_store` built (tests, or after re-configuring)."""
    with _shared_lock:
        _shared_stores.clear()


def apply_definitions(
    settings: Settings, *, store: FeatureStore | None = None
) -> FeatureDefinitions:
    """Register Shopflow's entities, sources, views and services (idempotent).

    Also creates the online tables. Safe to run from parallel tasks: the SQL registry
    serialises writes.

    Returns:
        The definitions that were applied.
    """
    from shopflow.features.definitions import build_definitions

    store = store or get_store(settings)
    definitions = build_definitions(settings)
    store.apply(definitions.objects())
    store.refresh_registry()  # type: ignore[no-untyped-call]  # untyped in Feast 0.67
    logger.info(
        "applied Feast project %r: %d objects (registry %s, online %s)",
        settings.features.project,
        len(definitions.objects()),
        redact_url(registry_url(settings)),
        settings.features.online_store,
    )
    return definitions


def require_applied(store: FeatureStore, name: str) -> None:
    """Fail clearly when a feature view is not in the registry (``apply`` not run)."""
    from feast.errors import FeatureViewNotFoundException

    try:
        store.get_feature_view(name)
    except FeatureViewNotFoundException as exc:
        raise FeatureStoreError(
            f"feature view {name!r} is not registered in Feast project "
            f"{store.project!r}; run `shopflow features apply` first"
        ) from exc


def feast_env(settings: Settings) -> dict[str, str]:
    """Environment for ``feast`` CLI runs in ``feature_repo/`` (its YAML substitutes these).

    ``SHOPFLOW_HOME`` is included so that ``feature_repo``'s Python modules, which load
    settings from the environment, build the same definitions as the Python API.
    """
    import json

    if settings.features.online_store == "redis":
        online = {
            "type": "redis",
            "connection_string": redis_connection_string(settings.features.redis_url),
        }
    else:
        online = {"type": "sqlite", "path": online_sqlite_path(settings)}
    return {
        "SHOPFLOW_HOME": str(settings.home_dir),
        "SHOPFLOW_FEATURES__PROJECT": settings.features.project,
        "SHOPFLOW_FEATURES__ONLINE_STORE": settings.features.online_store,
        "SHOPFLOW_FEATURES__REDIS_URL": settings.features.redis_url,
        "SHOPFLOW_FEAST_PROJECT": settings.features.project,
        "SHOPFLOW_FEAST_REGISTRY_URL": registry_url(settings),
        # A JSON mapping is valid YAML: Feast substitutes it into feature_store.yaml
        # before parsing, so one variable can carry either store's keys.
        "SHOPFLOW_FEAST_ONLINE_STORE": json.dumps(online),
    }
