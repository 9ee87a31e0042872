"""The one typed settings object.

Every knob of a run lives here, with a default, so ``shopflow`` runs with no file at all
(on the built-in synthetic generator). Values come from, highest precedence first:

1. keyword arguments to :func:`load_settings` (CLI flags, DAG params),
2. ``SHOPFLOW_*`` environment variables (nested keys with ``__``, e.g.
   ``SHOPFLOW_TASK__HORIZON=14d``; top-level ``SHOPFLOW_HOME``, ``SHOPFLOW_DATABASE_URL``),
3. the YAML run config (docs/DESIGN.md §3), given as ``--config FILE`` or ``SHOPFLOW_CONFIG``,
4. the defaults below.

Paths of local state are derived from ``home`` (``SHOPFLOW_HOME``), never hard-coded
elsewhere.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from shopflow.durations import Duration, format_duration
from shopflow.errors import PermanentError
from shopflow.redact import redact_url

if TYPE_CHECKING:
    from collections.abc import Iterator

CANONICAL_COLUMNS = (
    "user_id",
    "item_id",
    "event_type",
    "event_time",
    "price",
    "quantity",
    "order_id",
    "category_id",
)
EVENT_TYPES = ("view", "cart", "purchase", "return")
#: Lineage columns ingestion adds to every raw row (a duplicate key may name them).
LINEAGE_COLUMNS = ("batch_id", "source_file", "source_row", "ingested_at")
#: One event = equal canonical columns (what staging's event_id hashes by default).
DUPLICATE_KEY_DEFAULT = CANONICAL_COLUMNS
ModelFamily = Literal["baseline", "bgnbd", "xgboost", "lightgbm", "torch"]
MODEL_FAMILIES: tuple[ModelFamily, ...] = ("baseline", "bgnbd", "xgboost", "lightgbm", "torch")
#: The recommender's ranker families (the popularity baseline always runs beside them);
#: defined here, with the propensity families, so the run params can list them without
#: importing the rankers' numerical code.
RANKER_FAMILIES = ("lightgbm", "torch")
#: Test rows a candidate's global explanations use at most (``training.explain_rows``):
#: exact TreeSHAP costs rows x trees x leaves x depth, and the mean |SHAP| ranking of
#: 1,000 rows is already stable (``shopflow.evaluation.evaluate``).
EXPLAIN_ROWS = 1000
#: The executors ``shopflow airflow up`` can run tasks with.
AirflowExecutor = Literal["LocalExecutor", "CeleryExecutor"]

_DAY_S = 86_400
_MIN_PERIOD_S = 600  # a clickstream shorter than ten minutes holds no session structure

#: A memory size with a unit, as DuckDB's ``memory_limit`` reads it (4GB, 1.5 GiB, 512MB).
_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B|bytes)", re.IGNORECASE)

_yaml_config: ContextVar[dict[str, Any] | None] = ContextVar("_yaml_config", default=None)


class _Section(BaseModel):
    """Base for config sections: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid")


class SourceSettings(_Section):
    """Where raw events come from and how their columns map onto the event contract."""

    path: str | None = Field(
        default=None,
        description="A file or glob (CSV, CSV.gz or Parquet). None: the synthetic generator.",
    )
    header: list[str] | None = Field(
        default=None, description="Column names, only for files without a header row."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical column name -> column in the file; unmapped names match as is.",
    )
    event_types: dict[str, str] = Field(
        default_factory=dict,
        description="Value in the file -> canonical event type (view, cart, purchase, return).",
    )
    time_unit: Literal["s", "ms"] | None = Field(
        default=None, description="Unit of numeric epoch timestamps."
    )
    time_format: str | None = Field(
        default=None, description="strftime format of string timestamps; None: ISO-like, inferred."
    )
    timezone: str = Field(default="UTC", description="Zone of naive timestamps in the file.")
    delimiter: str | None = Field(default=None, description="CSV delimiter; None: ','.")
    chunk_rows: int = Field(default=250_000, gt=0, description="Rows read per chunk.")

    @field_validator("columns")
    @classmethod
    def _known_canonical_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(CANONICAL_COLUMNS))
        if unknown:
            raise ValueError(
                f"source.columns maps unknown canonical column(s) {unknown}; "
                f"canonical columns are {list(CANONICAL_COLUMNS)}"
            )
        return value

    @field_validator("event_types")
    @classmethod
    def _known_event_types(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in EVENT_TYPES})
        if bad:
            raise ValueError(
                f"source.event_types maps to unknown event type(s) {bad}; "
                f"allowed: {list(EVENT_TYPES)}"
            )
        return value


class GeneratorSettings(_Section):
    """The synthetic shop: sizes and the rates of real-world mess it injects.

    The period is ``days`` (a day-scale shop: weekly and daily rhythm, monthly moods,
    returns days later) or ``period``, a duration: whole days (``14d``) mean the same as
    ``days``; under a day (``6h``, ``90m``) a minute-level clickstream whose time constants
    scale with the period (shopflow.ingest.generator). Give one of the two, not both.
    """

    events: int = Field(default=200_000, gt=0)
    days: int = Field(default=120, gt=0)
    period: Duration | None = Field(
        default=None,
        description="Length of the period as a duration (6h, 90m, 14d); None: days. "
        "Under a day: a minute-level clickstream.",
    )
    seed: int = 7
    users: int | None = Field(default=None, description="None: scaled from events.")
    items: int | None = Field(default=None, description="None: scaled from events.")
    categories: int = Field(default=40, gt=0)
    missing_user_rate: float = Field(default=0.01, ge=0, le=1)
    duplicate_rate: float = Field(default=0.005, ge=0, le=1)
    bad_price_rate: float = Field(default=0.002, ge=0, le=1)
    late_event_rate: float = Field(default=0.01, ge=0, le=1)
    return_rate: float = Field(default=0.05, ge=0, le=1)
    cart_return_rate: float = Field(
        default=0.0, ge=0, le=1,
        description="Share of sessions that cart without buying after which the shopper "
        "comes back (1.5 days later on average; a 24th of a sub-day period) and buys the "
        "carted items. 0: carts only mark intent.",
    )
    checkout_minutes: float = Field(
        default=0.0, ge=0, le=120,
        description="Mean minutes a session that buys keeps going between its carts and "
        "its purchase (the checkout: it views the carted items again, then pays), while a "
        "session that carts without buying ends at the cart. 0: the purchase follows the "
        "carts at once (and the dump leaves the key out, so fingerprints stay).",
    )
    chunk_events: int = Field(default=1_000_000, gt=0)

    @model_validator(mode="after")
    def _one_period(self) -> GeneratorSettings:
        if self.period is None:
            return self
        if "days" in self.model_fields_set:
            raise ValueError(
                "give the period as generator.days or generator.period, not both "
                f"(days={self.days}, period={format_duration(self.period)})"
            )
        seconds = self.period.total_seconds()
        if seconds != int(seconds) or seconds < _MIN_PERIOD_S:
            raise ValueError(
                f"generator.period {format_duration(self.period)} must be whole seconds and "
                f"at least {_MIN_PERIOD_S // 60} minutes"
            )
        if seconds >= _DAY_S and seconds % _DAY_S:
            raise ValueError(
                f"generator.period {format_duration(self.period)}: a period of a day or more "
                "must be whole days (e.g. 2d); under a day it is a minute-level clickstream"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump_one_period(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The dump names the period once, as it was given: without a period it is what it
        # was before the key existed (so the fingerprints of existing configs, synthetic
        # file names and recorded runs, stay put); with one, the unused days are left out
        # (so a dump validates again).
        data: dict[str, Any] = handler(self)
        data.pop("period" if self.period is None else "days", None)
        if not self.checkout_minutes:
            data.pop("checkout_minutes", None)
        return data

    @property
    def period_seconds(self) -> int:
        """The period's length in seconds (``period``, else ``days``)."""
        if self.period is None:
            return self.days * _DAY_S
        return int(self.period.total_seconds())

    @property
    def sub_day(self) -> bool:
        """True when the period is shorter than a day (a minute-level clickstream)."""
        return self.period_seconds < _DAY_S


class TaskSettings(_Section):
    """The prediction task: label horizon, feature lookback, cutoff spacing."""

    horizon: Duration = Field(default=timedelta(days=30))
    lookback: Duration = Field(default=timedelta(days=90))
    cutoff_every: Duration = Field(default=timedelta(days=7))


class WarehouseSettings(_Section):
    """Where ingested events and dbt marts live."""

    backend: Literal["duckdb", "postgres"] = "duckdb"
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    schema_prefix: str = Field(
        default="",
        description="Prepended to every schema name (raw, staging, intermediate, marts), "
        "so several warehouses can share one PostgreSQL database.",
    )
    memory_limit: str | None = Field(
        default=None,
        description="DuckDB's memory limit (e.g. 4GB, 512MiB); past it DuckDB spills to "
        "temp_directory instead of growing. None: half of the machine's physical memory.",
    )
    threads: int | None = Field(
        default=None, ge=1, description="DuckDB worker threads. None: the CPUs this process may use."
    )
    temp_directory: Path | None = Field(
        default=None,
        description="Where DuckDB spills. None: SHOPFLOW_HOME/tmp/duckdb (created on open).",
    )

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        """A size DuckDB understands, checked here so a typo names its key, not a SQL error."""
        if value is None:
            return None
        text = value.strip()
        if not _MEMORY_SIZE.fullmatch(text):
            raise ValueError(
                f"warehouse.memory_limit must be a size with a unit like 4GB, 512MB or 2GiB, "
                f"got {value!r}"
            )
        return text

    # Shadows pydantic's deprecated v1 classmethod ``schema()``, which nothing here uses.
    def schema(self, layer: str) -> str:  # type: ignore[override]
        """The schema that holds a layer (``raw``, ``staging``, ``intermediate``, ``marts``)."""
        return f"{self.schema_prefix}{layer}"


class QualitySettings(_Section):
    """Thresholds of the Great Expectations gates (severity per check lives in the suites)."""

    max_null_user_rate: float = 0.35
    max_duplicate_rate: float = 0.02
    max_future_tolerance: Duration = Field(default=timedelta(days=1))
    volume_tolerance: float = Field(
        default=0.5, description="Relative change in batch volume allowed vs the last good batch."
    )
    max_psi: float = Field(default=0.25, description="Population stability index that blocks.")
    warn_psi: float = 0.1
    label_rate_bounds: tuple[float, float] = (0.001, 0.6)
    max_label_rate_shift: float = Field(
        default=0.2, description="Absolute change in label rate vs the last good batch that blocks."
    )
    min_event_time: datetime = Field(
        default=datetime(1990, 1, 1),
        description="Events before this (naive UTC) block: a 1970 epoch or seconds read as "
        "milliseconds, not history. Purchase histories of any era since 1990 pass.",
    )
    max_event_age: Duration | None = Field(
        default=None,
        description="Optional: events older than this (vs the gate's clock) block too.",
    )
    duplicate_key: list[str] = Field(
        default_factory=lambda: list(DUPLICATE_KEY_DEFAULT),
        min_length=1,
        description="Columns whose equal values make rows one event: staging keeps the first "
        "copy (dbt var event_key) and the raw gate counts the others. Add source_file and "
        "source_row to keep exact duplicates as distinct events (repeat purchases in a file "
        "with day-level dates and no order id).",
    )
    warn_return_rate: float = Field(
        default=0.02, ge=0, le=1, description="Share of return/cancellation rows that is reported."
    )
    warn_null_rate: float = Field(
        default=0.05, ge=0, le=1, description="Null share of a nullable column that is reported."
    )
    drift_bins: int = Field(default=10, ge=2, description="Quantile bins of the PSI histograms.")
    leakage_sample_above_users: int | None = Field(
        default=50_000,
        ge=0,
        description="The dbt leakage tests recount every shopper of a feature table with at "
        "most this many; above it, only a fixed hash sample of them (a recount costs about "
        "what building the features does). None (`off` in env vars): always every shopper; 0: "
        "always a sample.",
    )
    leakage_sample_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Share of shoppers (by a stable hash of user_id) that a sampled leakage "
        "test recounts.",
    )

    @field_validator("min_event_time", mode="before")
    @classmethod
    def _naive_utc(cls, value: Any) -> Any:
        """A date, or an ISO text or datetime, as naive UTC (what the gates compare with)."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    @field_validator("leakage_sample_above_users", mode="before")
    @classmethod
    def _off_is_none(cls, value: Any) -> Any:
        """``off`` (also ``none``/``null``, as env vars spell it) never samples."""
        if isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        return value

    @field_validator("duplicate_key")
    @classmethod
    def _known_columns(cls, value: list[str]) -> list[str]:
        allowed = (*CANONICAL_COLUMNS, *LINEAGE_COLUMNS)
        unknown = [c for c in value if c not in allowed]
        if unknown:
            raise ValueError(f"quality.duplicate_key: unknown column(s) {unknown}; choose from "
                             f"{list(allowed)}")
        if len(set(value)) != len(value):
            raise ValueError("quality.duplicate_key lists a column twice")
        return value


class FeatureSettings(_Section):
    """Feast: registry, offline and online stores."""

    online_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str = "127.0.0.1:6379"
    registry_url: str | None = Field(
        default=None, description="SQLAlchemy URL of Feast's SQL registry; None: SQLite in home."
    )
    materialize_overlap: Duration = Field(default=timedelta(days=2))
    windows: list[Duration] | None = Field(
        default=None,
        description=(
            "Windows of the windowed user features (events_7d, purchases_1h, ...), each at "
            "most task.lookback; None: derived from the task (shopflow.features.windows)."
        ),
    )
    feature_service: str = Field(
        default="propensity_v2",
        description=(
            "Feast feature service the models train on: propensity_v2 is the task's "
            "catalogue; propensity_v1 the legacy fixed list."
        ),
    )
    retrieval_chunk_rows: int = Field(
        default=500_000, ge=1,
        description="Entity rows per Feast historical retrieval (whole cutoffs per chunk, "
        "shopflow.features.training): bounds DuckDB's point-in-time join and the Arrow "
        "result held at once; each chunk re-scans the feature tables.")
    project: str = Field(
        default="shopflow",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_]*$",
        description="Feast project: namespaces registry objects and online keys (Redis).",
    )


class TrainingSettings(_Section):
    """Candidates, split and search budget."""

    families: list[ModelFamily] = Field(
        default_factory=lambda: list(MODEL_FAMILIES)
    )
    seed: int = 42
    validation_cutoffs: int = Field(default=1, ge=1)
    test_cutoffs: int = Field(default=1, ge=1)
    search_trials: int | None = Field(
        default=None, ge=1,
        description="Hyperparameter trials per family; None: a fixed budget from the "
        "training rows (4-12 trials, shopflow.training.search.trial_budget).")
    search_seconds: float = Field(
        default=1800.0, gt=0,
        description="Safety time box per family; the trial budget, not this, should end "
        "the search (the report says when it did not).")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Decision threshold for P/R/F1.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_rows: int | None = Field(
        default=1_000_000, ge=1000,
        description="Training rows (train cutoffs only) above which negatives are "
        "down-sampled with weights 1/keep_rate, every positive kept "
        "(shopflow.training.sampling); None: never. Validation and test rows are never "
        "sampled. The default keeps a 10M-event shop's fits near 6 GiB (docs/performance.md).")
    explain_rows: int = Field(
        default=EXPLAIN_ROWS, ge=1,
        description="Test rows the global explanations of each candidate use at most (mean "
        "|SHAP|; permutation importance for families without SHAP): above it a seeded "
        "sample, below it every row; the evaluation and its report say how many of how "
        "many. Metrics, slices, calibration and intervals always use every test row.")


class GateSettings(_Section):
    """Gate 2: challenger vs champion."""

    primary_metric: str = "roc_auc"
    min_improvement: float = 0.002
    guard_tolerances: dict[str, float] = Field(
        default_factory=lambda: {"log_loss": 0.02, "slice_roc_auc": 0.03},
        description="Allowed regression vs the champion; slice_roc_auc is per guarded slice.",
    )
    min_roc_auc: float = Field(
        default=0.55, ge=0, le=1,
        description="Absolute floor of the first promotion (no champion): overall ROC AUC.",
    )
    max_ece: float = Field(
        default=0.1, ge=0, le=1,
        description="Absolute bound of the first promotion: expected calibration error.",
    )
    min_slice_roc_auc: float = Field(
        default=0.5, ge=0, le=1,
        description="Absolute floor of the first promotion on every guarded slice.",
    )
    min_slice_positives: int = Field(
        default=20, ge=1,
        description="Positives (and negatives) a slice needs to be guarded; smaller ones are "
        "reported only (their AUC is noise).",
    )
    bootstrap_resamples: int = Field(
        default=500, ge=50, le=10_000,
        description="Paired bootstrap resamples of the primary-metric difference.",
    )
    bootstrap_seed: int = 0
    bootstrap_confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap_max_rows: int = Field(
        default=50_000, ge=100, description="Rows resampled at most (seeded subsample beyond)."
    )
    complexity: dict[str, int] = Field(
        default_factory=lambda: {"baseline": 0, "bgnbd": 1, "lightgbm": 2, "xgboost": 2,
                                 "torch": 3},
        description="Family -> complexity rank. A more complex model replaces a simpler one "
        "only when the bootstrap interval's lower bound clears min_improvement; an unknown "
        "family ranks above every known one.",
    )


class ExperimentSettings(_Section):
    """An A/B test of ``/predict``: a sticky share of shoppers is answered by a challenger.

    A shopper is in the challenger arm when ``hash(salt, user id)``, read as a number in
    [0, 1), is below ``share``; the same shopper always lands in the same arm (for one
    salt). The monitoring DAG's ``experiment_readout`` compares the arms on matured labels
    and applies the decision rule (docs/ARCHITECTURE.md, "A/B tests"): *promote* when the
    lower confidence bound of the primary metric's difference (challenger - champion) is
    above 0 and the purchase rate is not worse beyond ``purchase_rate_tolerance``; *stop*
    when its upper bound is below 0 or the purchase-rate guardrail is breached; else
    *continue* (also while either arm has fewer than ``min_rows_per_arm`` matured rows).
    """

    enabled: bool = Field(default=False, description="Split /predict traffic (off: no cost).")
    challenger: str | None = Field(
        default=None,
        description="Model version answering the challenger arm; None: the newest candidate "
        "registered after the production model that no experiment stopped.",
    )
    share: float = Field(default=0.1, gt=0, lt=1,
                         description="Fraction of shoppers in the challenger arm, in (0, 1).")
    salt: str = Field(default="shopflow-ab", min_length=1,
                      description="Hash salt: a new salt reshuffles shoppers between arms.")
    min_rows_per_arm: int = Field(
        default=200, gt=0, description="Matured shoppers each arm needs before a decision.")
    confidence: float = Field(default=0.95, gt=0.5, lt=1,
                              description="Confidence level of the intervals.")
    primary_metric: Literal["roc_auc", "purchase_rate"] = Field(
        default="roc_auc", description="The metric whose difference decides.")
    purchase_rate_tolerance: float = Field(
        default=0.02, ge=0,
        description="Guardrail: the challenger arm's purchase rate may be lower by at most "
        "this much (absolute); promote needs the lower bound above -tolerance, and an upper "
        "bound below -tolerance stops the test.",
    )
    resamples: int = Field(default=500, ge=50,
                           description="Bootstrap resamples of the ROC AUC intervals.")


class ServingSettings(_Section):
    """The BentoML service."""

    host: str = "127.0.0.1"
    port: int = 3000
    max_batch: int = Field(default=1000, gt=0)
    auth_token: str | None = None
    shadow: bool = False
    shadow_version: str | None = Field(
        default=None,
        description="Challenger scored in shadow mode; None: the newest non-production candidate.",
    )
    reload_interval: float = Field(default=2.0, gt=0, description="Seconds between alias polls.")
    compiled: bool = Field(
        default=True,
        description="Score with the compiled predictor registration stored beside a model "
        "(after the swap-time check); false: always the library's predict.",
    )
    batching: bool = Field(
        default=True, description="Score concurrent /predict requests together (micro-batching)."
    )
    deploy_pending_on_start: bool = Field(
        default=True,
        description="At start, run gate 3 against this service on a deploy-pending candidate "
        "(promoted while no service answered); false: only `shopflow deploy --pending` does.",
    )
    prediction_log: bool = Field(
        default=True,
        description="Log every served answer to SHOPFLOW_HOME/predictions (gate 4, skew, A/B).",
    )
    prediction_log_flush_interval: float = Field(
        default=1.0, gt=0,
        description="Seconds between prediction-log writes: the most a crash can lose.",
    )
    prediction_log_max_bytes: int = Field(
        default=64 << 20, gt=0, description="A prediction-log file past this size is rotated."
    )
    prediction_log_rotate_seconds: float = Field(
        default=3600.0, gt=0, description="A new prediction-log file every UTC period this long."
    )
    prediction_log_max_pending: int = Field(
        default=10_000, gt=0,
        description="Answers buffered for the log; past it new ones are dropped and counted.",
    )
    metrics: bool = Field(default=True, description="Serve GET /metrics (Prometheus text).")
    experiment: ExperimentSettings = Field(
        default_factory=ExperimentSettings,
        description="A/B test of /predict: champion vs challenger by a sticky user hash.",
    )
    post_deploy_window: float = Field(default=5.0, ge=0)
    package: bool = Field(
        default=True,
        description="After gate 3 passes, build a Bento carrying the deployed model "
        "(shopflow.serving.bento); a failed build is reported, the deployment stands.",
    )
    max_error_rate: float = 0.01
    max_p99_ms: float = 250.0


_OFF = frozenset({"off", "none", "null", ""})


def _age_limit(value: object) -> object:
    """``off`` (also ``none``/``null``, handy in env vars) switches a staleness check off."""
    if isinstance(value, str) and value.strip().lower() in _OFF:
        return None
    return value


#: A staleness threshold: a duration (``30d``), or ``off`` / null.
AgeLimit = Annotated[Duration | None, BeforeValidator(_age_limit)]
#: The model-age threshold: ``measured`` (the training report's), a duration, or ``off``.
ModelAgeLimit = Annotated[Literal["measured"] | Duration | None, BeforeValidator(_age_limit)]


class MonitoringSettings(_Section):
    """Gate 4, drift and staleness.

    Staleness is judged in data time (the newest published event, i.e. the serving
    cutoff), since the wall clock says nothing about a historical export; wall-clock ages
    are reported beside. Env overrides: ``SHOPFLOW_MONITORING__MAX_MODEL_AGE=45d``, ``=off``.
    """

    drift_psi_threshold: float = 0.25
    live_tolerance: float = Field(default=0.02, description="Allowed drop of the primary metric.")
    min_matured_rows: int = Field(
        default=200, ge=1,
        description="Matured rows (with both labels) gate 4 needs, backtest or served.")
    skew_sample: int = Field(
        default=200, ge=1,
        description="Logged live /predict rows the skew check compares with Feast's "
        "point-in-time offline features.")
    skew_feature_tolerance: float = Field(
        default=1e-6, ge=0,
        description="Largest allowed |served - offline| of a feature, relative to "
        "max(1, |offline|); a value on one side only is a mismatch.")
    skew_score_tolerance: float = Field(
        default=1e-5, ge=0,
        description="Largest allowed |served score - offline re-score| (the compiled "
        "predictor may differ from the library by 1e-6).")
    max_model_age: ModelAgeLimit = Field(
        default="measured",
        description="Largest allowed age of the production model: newest published event "
        "minus its last training cutoff. 'measured': the training report's age curve (the "
        "recommended retraining age plus the label lag); a duration; or 'off'.",
    )
    max_feature_staleness: AgeLimit = Field(
        default=timedelta(days=1),
        description="Largest allowed lag of the online store: newest published cutoff minus "
        "each feature view's materialization watermark; 'off' disables the check.",
    )
    max_recommender_age: AgeLimit = Field(
        default=timedelta(days=7),
        description="Largest allowed age of the production recommender's serving snapshot: "
        "newest published cutoff minus the snapshot's cutoff; 'off' disables the check.",
    )


class AirflowSettings(_Section):
    """The local Airflow of ``shopflow airflow up`` (``make airflow``)."""

    metadata_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Airflow's metadata DB; None: SQLite in the Airflow "
        "home. PostgreSQL (postgresql+psycopg2://...) for real concurrency.",
    )
    host: str = Field(default="127.0.0.1", description="Bind address of the api-server (UI).")
    port: int = Field(default=8080, gt=0, lt=65536, description="Port of the api-server (UI).")
    parallelism: int = Field(
        default=4, ge=4,
        description="Task slots: the LocalExecutor's worker processes; with the "
        "CeleryExecutor, how many tasks the scheduler keeps queued or running at once.",
    )
    admin_user: str = Field(default="admin", description="The generated admin login's name.")
    executor: AirflowExecutor = Field(
        default="LocalExecutor",
        description="LocalExecutor: tasks run as the scheduler's children. CeleryExecutor: "
        "tasks go through broker_url to celery_workers `airflow celery worker` processes "
        "(needs a PostgreSQL metadata_url; the deployment of docker-compose.yml).",
    )
    celery_workers: int = Field(
        default=2, ge=1, description="CeleryExecutor: how many `airflow celery worker` "
        "processes start (named worker-1, worker-2, ... in the task instances' hostname).",
    )
    celery_concurrency: int = Field(
        default=2, ge=1, description="CeleryExecutor: tasks one worker runs at once."
    )
    broker_url: str = Field(
        default="redis://127.0.0.1:6379/1",
        description="CeleryExecutor: the Celery broker (Redis; redis:// or rediss://).",
    )
    result_backend: str | None = Field(
        default=None,
        description="CeleryExecutor: where Celery keeps task results (db+postgresql://...); "
        "None: the metadata DB.",
    )

    @model_validator(mode="after")
    def _celery_needs_shared_servers(self) -> AirflowSettings:
        if self.executor != "CeleryExecutor":
            return self
        if self.metadata_url is None or self.metadata_url.startswith("sqlite"):
            raise ValueError(
                "airflow.executor CeleryExecutor needs a PostgreSQL airflow.metadata_url "
                "(postgresql+psycopg2://...): Airflow refuses SQLite with Celery workers"
            )
        if not self.broker_url.startswith(("redis://", "rediss://")):
            raise ValueError(
                f"airflow.broker_url must be a Redis URL (redis://host:port/db); got "
                f"{redact_url(self.broker_url)!r}"
            )
        return self


class RetentionSettings(_Section):
    """How long files that hold (pseudonymized or raw) shopper rows are kept; None: forever.

    Enforced by the writers when they add a file (shopflow.privacy.expire), by file age.
    ``shopflow forget`` erases one shopper at once, whatever these say.
    """

    logs: Duration | None = Field(
        default=timedelta(days=30),
        description="Daily log files of the service (shadow log, prediction log), by age.",
    )
    quarantine: Duration | None = Field(
        default=timedelta(days=90),
        description="Quarantined raw batches (quarantine/<batch_id>/), by age.",
    )


class PrivacySettings(_Section):
    """Pseudonymization and retention of shopper data."""

    retention: RetentionSettings = Field(default_factory=RetentionSettings)


AlertEvent = Literal["run_failed", "gate_blocked", "deploy_pending", "rollback", "drift",
                     "skew", "staleness", "integrity"]
#: Every kind of alert Shopflow raises (``shopflow.alerts.ALERT_EVENTS`` describes each).
ALERT_EVENT_KINDS: tuple[AlertEvent, ...] = ("run_failed", "gate_blocked", "deploy_pending",
                                            "rollback", "drift", "skew", "staleness",
                                            "integrity")


class AlertSettings(_Section):
    """Who is told when a run fails, a gate blocks, a model is rolled back or data drifts.

    No channel is configured by default (alerts go to the log only). Env overrides, e.g.
    ``SHOPFLOW_ALERTS__SMTP_HOST=mail.internal``, ``SHOPFLOW_ALERTS__SMTP_TO='["ops@shop"]'``,
    ``SHOPFLOW_ALERTS__WEBHOOK_URL=https://hooks.slack.com/services/...``.
    """

    events: list[AlertEvent] = Field(
        default_factory=lambda: list(ALERT_EVENT_KINDS),
        description="Which events are sent; the others are only logged.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server; None: no e-mail.")
    smtp_port: int = Field(default=25, gt=0)
    smtp_from: str = "shopflow@localhost"
    smtp_to: list[str] = Field(default_factory=list, description="Recipients of alert e-mail.")
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    webhook_url: str | None = Field(
        default=None,
        description="POSTed a Slack-compatible JSON body ({'text': ...} plus the fields).",
    )
    timeout: float = Field(default=10.0, gt=0, description="Seconds per delivery attempt.")


class Settings(BaseSettings):
    """Everything a Shopflow run needs to know."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPFLOW_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(default=Path(".shopflow"), description="All local state (SHOPFLOW_HOME).")
    database_url: str | None = Field(
        default=None, description="The ledger's SQLAlchemy URL; None: SQLite in home."
    )
    source: SourceSettings = Field(default_factory=SourceSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)
    task: TaskSettings = Field(default_factory=TaskSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    airflow: AirflowSettings = Field(default_factory=AirflowSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)

    _config_dir: Path | None = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    # ---- derived locations: one place decides where state lives -------------------
    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.home_dir / "warehouse.duckdb"

    @property
    def duckdb_temp_dir(self) -> Path:
        """Where DuckDB spills what does not fit in ``warehouse.memory_limit``."""
        configured = self.warehouse.temp_directory
        if configured is not None:
            return configured.expanduser().resolve()
        return self.home_dir / "tmp" / "duckdb"

    @property
    def ledger_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'ledger.db'}"

    @property
    def feast_dir(self) -> Path:
        return self.home_dir / "feast"

    @property
    def feast_registry_url(self) -> str:
        return self.features.registry_url or f"sqlite:///{self.feast_dir / 'registry.db'}"

    @property
    def bentoml_home(self) -> Path:
        return self.home_dir / "bentoml"

    @property
    def airflow_home(self) -> Path:
        return self.home_dir / "airflow"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def quarantine_dir(self) -> Path:
        return self.home_dir / "quarantine"

    @property
    def data_dir(self) -> Path:
        """Generated raw files and exported mart snapshots."""
        return self.home_dir / "data"

    @property
    def privacy_dir(self) -> Path:
        """The records of ``shopflow forget`` (pseudonymized ids only)."""
        return self.home_dir / "privacy"

    @property
    def config_dir(self) -> Path | None:
        """Directory of the YAML config this was loaded from (relative paths resolve here)."""
        return self._config_dir

    def ensure_dirs(self) -> None:
        """Create the local state folders; called by commands, never at import time."""
        for path in (self.home_dir, self.feast_dir, self.bentoml_home, self.airflow_home,
                     self.reports_dir, self.quarantine_dir, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)


class _YamlSource(PydanticBaseSettingsSource):
    """Feeds the YAML run config (loaded by :func:`load_settings`) into the settings."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        data = _yaml_config.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_config.get() or {})


class ConfigError(PermanentError, ValueError):
    """The run config cannot be read or does not match the schema."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML run config, with errors that name the file."""
    config_path = Path(path)
    if not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path}")
    try:
        data = yaml.safe_load(config_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of sections")
    return data


@contextmanager
def _yaml_context(data: dict[str, Any] | None) -> Iterator[None]:
    token = _yaml_config.set(data)
    try:
        yield
    finally:
        _yaml_config.reset(token)


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from a YAML file (or ``SHOPFLOW_CONFIG``), env vars and overrides.

    Raises:
        ConfigError: the file is missing, is not YAML, or has unknown or invalid keys.
    """
    from pydantic import ValidationError

    config = config or os.environ.get("SHOPFLOW_CONFIG") or None
    data = read_config_file(config) if config else None
    try:
        with _yaml_context(data):
            settings = Settings(**overrides)
    except ValidationError as exc:
        where = f" in {config}" if config else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration{where}: {problems}") from exc
    if config:
        settings._config_dir = Path(config).resolve().parent
    return settings


def settings_fingerprint(settings: Settings) -> str:
    """A stable hash of the run-relevant config (recorded with every model)."""
    import hashlib
    import json

    # privacy (retention) and alerts change no model: leaving them out keeps recorded
    # fingerprints put (and SMTP passwords out of the hash input)
    payload = settings.model_dump(mode="json", exclude={"home", "database_url", "serving",
                                                        "privacy", "alerts"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
