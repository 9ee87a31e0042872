"""Staleness: is what production serves older than allowed?

Three checks, each an age, a threshold (``monitoring.*``) and a status, all in *data
time*: against the newest published event (the dbt serving cutoff, i.e. the published
data's "now"), because the wall clock says nothing about a historical shop export.
Wall-clock ages are reported beside.

* **model age** — newest event minus the production model's last training cutoff (from
  its age curve, :mod:`shopflow.evaluation.aging`; without one, the end of its ledger data
  window). The threshold is ``monitoring.max_model_age``; by default (``measured``) the
  served age the training report's age curve allows.
* **feature freshness** — newest published cutoff minus each feature view's
  materialization watermark in the online store (``monitoring.max_feature_staleness``).
* **recommender age** — newest published cutoff minus the production recommender's
  serving-snapshot cutoff (``monitoring.max_recommender_age``).

A check over its threshold raises a ``staleness`` alert naming the setting that changes
it. A check with nothing to look at (no production model, no Feast registry) is
``skipped``; one whose threshold is ``off`` is reported but never alerts.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from shopflow.settings import Settings

logger = logging.getLogger(__name__)

CheckStatus = Literal["ok", "stale", "off", "skipped"]


def setting_key(name: str) -> str:
    """The env variable of a ``monitoring`` setting (what an alert tells people to change)."""
    return f"SHOPFLOW_MONITORING__{name.upper()}"


@dataclass
class StalenessCheck:
    """One staleness check.

    Attributes:
        name: ``model_age``, ``feature_freshness`` or ``recommender_age``.
        status: ``ok``, ``stale`` (over the threshold: alerted), ``off`` (no threshold) or
            ``skipped`` (nothing to check).
        age_seconds: the age in data time (None: unknown, e.g. never materialized).
        threshold_seconds: the limit it was judged against (None: off).
        threshold_source: ``config`` (set by hand) or ``measured`` (the age curve).
        setting: the env variable that changes the threshold.
        reason: one line for people.
        details: anchors, wall-clock ages, per-view numbers.
    """

    name: str
    status: CheckStatus
    setting: str
    reason: str
    age_seconds: float | None = None
    threshold_seconds: float | None = None
    threshold_source: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The fields, with the age and threshold also in days (rounded) for people."""
        data = asdict(self)
        for name, seconds in (("age_days", self.age_seconds),
                              ("threshold_days", self.threshold_seconds)):
            data[name] = None if seconds is None else round(seconds / 86400, 4)
        return data


@dataclass
class StalenessReport:
    """Every check of one monitoring run, and the data time they were judged at."""

    data_now: str | None
    checks: list[StalenessCheck]

    @property
    def stale(self) -> list[str]:
        return [c.name for c in self.checks if c.status == "stale"]

    def to_dict(self) -> dict[str, Any]:
        return {"data_now": self.data_now, "stale": self.stale,
                "checks": {c.name: c.to_dict() for c in self.checks}}


def judge(age: timedelta | None, limit: timedelta | None) -> CheckStatus:
    """``off`` without a limit; ``stale`` above it (an unknown age counts as stale)."""
    if limit is None:
        return "off"
    if age is None or age > limit:
        return "stale"
    return "ok"


def _utc(value: Any) -> pd.Timestamp:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _days(seconds: float | None) -> str:
    """``35d``, ``1.5d``, ``6h``, ``30m``: an age written the way the settings take it."""
    if seconds is None:
        return "unknown"
    for suffix, size in (("d", 86400), ("h", 3600)):
        if abs(seconds) >= size:
            return f"{seconds / size:.4g}{suffix}"
    return f"{seconds / 60:.3g}m"


def _wall_age(when: Any, now: datetime) -> float | None:
    if when is None:
        return None
    return float((_utc(now) - _utc(when)).total_seconds())


def _checked(name: str, *, key: str, age: timedelta | None, limit: timedelta | None,
             source: str | None, what: str, details: dict[str, Any]) -> StalenessCheck:
    """A check with its status and a reason that names the setting ``key``."""
    status = judge(age, limit)
    age_s = None if age is None else age.total_seconds()
    limit_s = None if limit is None else limit.total_seconds()
    if status == "off":
        reason = f"{what} is {_days(age_s)} old in data time (no threshold: {key} is off)"
    else:
        verdict = "over" if status == "stale" else "within"
        origin = " measured by the training report" if source == "measured" else ""
        reason = (f"{what} is {_days(age_s)} old in data time, {verdict} the "
                  f"{_days(limit_s)} limit{origin} (set by {key})")
    return StalenessCheck(name=name, status=status, setting=key, reason=reason,
                          age_seconds=age_s, threshold_seconds=limit_s,
                          threshold_source=source if limit is not None else None,
                          details=details)


def check_model_age(settings: Settings, data_now: pd.Timestamp, *,
                    now: datetime | None = None) -> StalenessCheck:
    """The production model's age: newest event minus its last training cutoff."""
    from shopflow.evaluation.aging import load_age_curve
    from shopflow.monitoring.reference import production_and_candidate

    key = setting_key("max_model_age")
    production, candidate = production_and_candidate(settings)
    if production is None:
        return StalenessCheck(name="model_age", status="skipped", setting=key,
                              reason="no production model yet")
    curve = load_age_curve(settings.home_dir, production.version)
    anchor, anchor_kind = None, None
    if curve and curve.get("trained_until"):
        anchor, anchor_kind = curve["trained_until"], "last training cutoff (age curve)"
    elif candidate is not None and candidate.data_window[1]:
        anchor, anchor_kind = candidate.data_window[1], "data window end (ledger)"
    if anchor is None:
        return StalenessCheck(name="model_age", status="skipped", setting=key,
                              reason=f"production {production.version} has neither an age "
                                     "curve nor a data window in the ledger")
    configured = settings.monitoring.max_model_age
    limit: timedelta | None = None
    source: str | None = None
    if isinstance(configured, timedelta):
        limit, source = configured, "config"
    elif configured == "measured":
        served = (curve or {}).get("max_served_age_seconds")
        if served is not None:
            limit, source = timedelta(seconds=float(served)), "measured"
    clock = now or datetime.now(UTC)
    details = {
        "version": production.version, "family": production.family,
        "anchor": str(anchor), "anchor_kind": anchor_kind, "data_now": data_now.isoformat(),
        "wall_clock_since_deployed_seconds": _wall_age(production.since, clock),
        "wall_clock_since_trained_seconds": _wall_age(
            candidate.created_at if candidate else None, clock),
    }
    if curve:
        details["recommended_retrain_age_seconds"] = curve.get("retrain_age_seconds")
        details["label_lag_seconds"] = curve.get("label_lag_seconds")
        details["drop_measured"] = curve.get("dropped")
    check = _checked("model_age", key=key, age=data_now - _utc(anchor), limit=limit, source=source,
                     what=f"production model {production.version} ({production.family})",
                     details=details)
    if configured == "measured" and limit is None:
        check.reason += (f"; {production.version} has no measured age curve, set "
                         f"{key} to judge it")
    return check


def check_feature_freshness(settings: Settings, data_now: pd.Timestamp) -> StalenessCheck:
    """The online store's lag: newest published cutoff minus each view's watermark."""
    from shopflow.features.materialization import get_watermark
    from shopflow.features.schema import feature_tables
    from shopflow.features.store import get_store

    key = setting_key("max_feature_staleness")
    try:
        store = get_store(settings)
    except Exception as exc:  # no registry yet, or an unreachable one
        return StalenessCheck(name="feature_freshness", status="skipped", setting=key,
                              reason=f"no Feast store to read: {type(exc).__name__}: {exc}")
    views: dict[str, dict[str, Any]] = {}
    for table in feature_tables(settings):
        if table.legacy and not table.offline_path(settings).is_file():
            continue  # never exported, never materialized (see features.materialization)
        try:
            watermark = get_watermark(store, table.view_name)
        except Exception as exc:  # the view was never applied
            views[table.view_name] = {"watermark": None, "error": f"{type(exc).__name__}: {exc}"}
            continue
        lag = None if watermark is None else data_now - _utc(watermark)
        views[table.view_name] = {
            "watermark": None if watermark is None else watermark.isoformat(),
            "lag_seconds": None if lag is None else lag.total_seconds(),
        }
    if not views or all("error" in v for v in views.values()):
        return StalenessCheck(name="feature_freshness", status="skipped", setting=key,
                              reason="no feature view is applied in Feast yet",
                              details={"views": views})
    lags = [v.get("lag_seconds") for v in views.values()]
    worst = None if any(lag is None for lag in lags) else timedelta(
        seconds=max(float(lag) for lag in lags if lag is not None))
    stalest = max(views, key=lambda name: float("inf") if views[name].get("lag_seconds") is None
                  else views[name]["lag_seconds"])
    return _checked("feature_freshness", key=key, age=worst,
                    limit=settings.monitoring.max_feature_staleness, source="config",
                    what=f"the online store ({stalest} behind most)",
                    details={"data_now": data_now.isoformat(), "views": views,
                             "online_store": settings.features.online_store})


def check_recommender_age(settings: Settings, data_now: pd.Timestamp, *,
                          now: datetime | None = None) -> StalenessCheck:
    """The production recommender's snapshot age: newest cutoff minus the snapshot's."""
    from shopflow.recommend.gate import recommender_ledger
    from shopflow.recommend.store import list_recommenders

    key = setting_key("max_recommender_age")
    ledger = recommender_ledger(settings)
    try:
        production = ledger.production()
    finally:
        ledger.close()
    if production is None:
        return StalenessCheck(name="recommender_age", status="skipped", setting=key,
                              reason="no recommender in production")
    stored = next((r for r in list_recommenders(settings) if r.version == production.version),
                  None)
    cutoff = None if stored is None else stored.metadata.get("snapshot_cutoff")
    if cutoff is None:
        return StalenessCheck(name="recommender_age", status="skipped", setting=key,
                              reason=f"recommender {production.version} is not in the model "
                                     "store or has no snapshot cutoff")
    clock = now or datetime.now(UTC)
    return _checked(
        "recommender_age", key=key, age=data_now - _utc(cutoff),
        limit=settings.monitoring.max_recommender_age, source="config",
        what=f"the serving snapshot of recommender {production.version}",
        details={"version": production.version, "family": stored.family if stored else None,
                 "snapshot_cutoff": str(cutoff), "data_now": data_now.isoformat(),
                 "wall_clock_since_built_seconds": _wall_age(
                     stored.created_at if stored else None, clock),
                 "wall_clock_since_deployed_seconds": _wall_age(production.since, clock)},
    )


def run_staleness_checks(settings: Settings, *, now: datetime | None = None,
                         alert: bool = True) -> StalenessReport:
    """Every check against the newest published cutoff; a ``staleness`` alert per stale one."""
    from shopflow.transform.publish import current_watermark

    newest = current_watermark(settings)
    if newest is None:
        reason = "no published marts: nothing to judge the age against (run shopflow_training)"
        return StalenessReport(data_now=None, checks=[
            StalenessCheck(name=name, status="skipped", setting=setting_key(key), reason=reason)
            for name, key in (("model_age", "max_model_age"),
                              ("feature_freshness", "max_feature_staleness"),
                              ("recommender_age", "max_recommender_age"))])
    data_now = _utc(newest)
    checks = [check_model_age(settings, data_now, now=now),
              check_feature_freshness(settings, data_now),
              check_recommender_age(settings, data_now, now=now)]
    report = StalenessReport(data_now=data_now.isoformat(), checks=checks)
    for result in checks:
        logger.info("staleness %s: %s: %s", result.name, result.status, result.reason)
        if alert and result.status == "stale":
            from shopflow.alerts import send_alert

            facts = result.to_dict()
            send_alert(settings, "staleness", result.reason, {
                "check": result.name, "setting": result.setting,
                "age_days": facts["age_days"], "threshold_days": facts["threshold_days"],
                "threshold_source": result.threshold_source, **result.details,
            })
    return report
