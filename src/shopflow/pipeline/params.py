"""The parameters of a training run: one definition for the Airflow form, the CLI and tasks.

The trigger form of ``shopflow_training``, ``shopflow pipeline run --param KEY=VALUE`` and
every task that rebuilds :class:`~shopflow.settings.Settings` read the same table below,
so a parameter cannot mean one thing in the UI and another on the command line. This
module imports no Airflow: the DAG file turns each spec into an ``airflow.sdk.Param``.

``None`` means "as configured": the value comes from the run config (``config`` param or
``SHOPFLOW_CONFIG``), ``SHOPFLOW_*`` variables or the built-in defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopflow.errors import PermanentError
from shopflow.settings import MODEL_FAMILIES, RANKER_FAMILIES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shopflow.settings import Settings

DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$"


class _Required:
    """Marks a param with no default: the trigger form and the CLI must set it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True)
class ParamSpec:
    """One trigger-form field: JSON-schema type, title and help text, and where it goes.

    Attributes:
        default: value when the trigger does not set it (``None``: as configured).
        type: JSON-schema type(s), as Airflow's ``Param`` takes them.
        title: the label in the trigger form.
        description: the help text under the field; says what the value changes.
        schema: extra JSON-schema keywords (enum, minimum, pattern, items...).
        setting: dotted path in :class:`Settings` the value overrides, if any.
    """

    default: Any
    type: str | list[str]
    title: str
    description: str
    schema: dict[str, Any] = field(default_factory=dict)
    setting: str | None = None

    def as_param_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``airflow.sdk.Param`` (no ``default`` when required)."""
        default = {} if self.default is REQUIRED else {"default": self.default}
        return {
            **default,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            **self.schema,
        }


TRAINING_PARAMS: dict[str, ParamSpec] = {
    "config": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Run config file",
        description="Path of a YAML run config (docs/DESIGN.md §3) on the workers. Empty: "
        "SHOPFLOW_CONFIG, or the built-in synthetic generator.",
        schema={"minLength": 1},
    ),
    "source_path": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Source file or glob",
        description="Raw events to ingest (CSV, CSV.gz or Parquet); overrides source.path. "
        "Empty: as configured.",
        schema={"minLength": 1},
        setting="source.path",
    ),
    "lookback": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Data window (feature lookback)",
        description="How much history before each cutoff the features use, e.g. 90d or "
        "12h (task.lookback). Empty: as configured.",
        schema={"pattern": DURATION_PATTERN},
        setting="task.lookback",
    ),
    "horizon": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Label horizon",
        description="A user is labelled a buyer if they purchase within this window after "
        "a cutoff, e.g. 30d or 30m (task.horizon). Empty: as configured.",
        schema={"pattern": DURATION_PATTERN},
        setting="task.horizon",
    ),
    "cutoff_every": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Cutoff spacing",
        description="Distance between training cutoffs, e.g. 7d (task.cutoff_every). "
        "Empty: as configured.",
        schema={"pattern": DURATION_PATTERN},
        setting="task.cutoff_every",
    ),
    "families": ParamSpec(
        default=None,
        type=["null", "array"],
        title="Model families",
        description="Candidates to train, one parallel task each: "
        + ", ".join(MODEL_FAMILIES)
        + ". Empty: training.families from the config.",
        schema={
            "items": {"type": "string", "enum": list(MODEL_FAMILIES)},
            "minItems": 1,
            "uniqueItems": True,
            "examples": list(MODEL_FAMILIES),
        },
        setting="training.families",
    ),
    "min_improvement": ParamSpec(
        default=None,
        type=["null", "number"],
        title="Minimum improvement to promote",
        description="Gate 2: the challenger's primary metric must beat the champion's by at "
        "least this much (gate.min_improvement). Empty: as configured.",
        schema={"minimum": 0, "maximum": 1},
        setting="gate.min_improvement",
    ),
    "primary_metric": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Primary metric",
        description="Metric gate 2 compares (gate.primary_metric). Empty: as configured "
        "(roc_auc by default).",
        schema={"enum": [None, "roc_auc", "pr_auc", "log_loss"]},
        setting="gate.primary_metric",
    ),
    "force_promote": ParamSpec(
        default=False,
        type="boolean",
        title="Force promotion",
        description="Promote the best candidate even if gate 2 rejects it. Needs a reason; "
        "who and why are written to the ledger.",
    ),
    "force_reason": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Reason for forcing",
        description="Why gate 2 is overridden (required with Force promotion); kept in the "
        "ledger.",
    ),
    "dry_run": ParamSpec(
        default=False,
        type="boolean",
        title="Dry run",
        description="Train and evaluate, run gate 2, but register, deploy and change "
        "nothing in production.",
    ),
    "recommend": ParamSpec(
        default=True,
        type="boolean",
        title="Train recommendations",
        description="Also train the recommender (what each shopper buys next) beside the "
        "propensity candidates, gate it on NDCG@10 and record the decision; the service "
        "hot swaps POST /recommend to a promoted one. Off: the branch is skipped.",
    ),
    "recommend_families": ParamSpec(
        default=None,
        type=["null", "array"],
        title="Recommender families",
        description="Rankers to train against the popularity baseline: "
        + ", ".join(RANKER_FAMILIES) + ". Empty: all of them.",
        schema={
            "items": {"type": "string", "enum": list(RANKER_FAMILIES)},
            "minItems": 1,
            "uniqueItems": True,
            "examples": list(RANKER_FAMILIES),
        },
    ),
}


_CONFIG_PARAM = TRAINING_PARAMS["config"]

FEATURES_PARAMS: dict[str, ParamSpec] = {"config": _CONFIG_PARAM}

MONITORING_PARAMS: dict[str, ParamSpec] = {
    "config": _CONFIG_PARAM,
    "drift_threshold": ParamSpec(
        default=None,
        type=["null", "number"],
        title="Drift threshold (PSI)",
        description="Population stability index above which a feature or the prediction "
        "distribution counts as drifted and retraining is triggered "
        "(monitoring.drift_psi_threshold). Empty: as configured.",
        schema={"exclusiveMinimum": 0},
        setting="monitoring.drift_psi_threshold",
    ),
    "live_tolerance": ParamSpec(
        default=None,
        type=["null", "number"],
        title="Live tolerance",
        description="Gate 4: largest allowed drop of the primary metric of production vs "
        "the previous model on matured labels (monitoring.live_tolerance).",
        schema={"minimum": 0, "maximum": 1},
        setting="monitoring.live_tolerance",
    ),
    "auto_rollback": ParamSpec(
        default=True,
        type="boolean",
        title="Roll back automatically",
        description="On a gate 4 regression, roll production back to the previous model "
        "(off: only report and alert).",
    ),
}

ROLLBACK_PARAMS: dict[str, ParamSpec] = {
    "config": _CONFIG_PARAM,
    "version": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Model version",
        description="The version to put back in production. Empty: the previous production "
        "model.",
        schema={"minLength": 1},
    ),
    "reason": ParamSpec(
        default=REQUIRED,
        type="string",
        title="Reason",
        description="Why production is rolled back; required, kept in the ledger.",
        schema={"minLength": 3},
    ),
    "from_version": ParamSpec(
        default=None,
        type=["null", "string"],
        title="Only from version",
        description="Roll back only if production is still this version (the one you judged "
        "bad); if it moved meanwhile the run is refused. Empty: whatever is in production.",
        schema={"minLength": 1},
    ),
}

PARAMS_BY_DAG: dict[str, dict[str, ParamSpec]] = {
    "shopflow_training": TRAINING_PARAMS,
    "shopflow_features": FEATURES_PARAMS,
    "shopflow_monitoring": MONITORING_PARAMS,
    "shopflow_rollback": ROLLBACK_PARAMS,
}


def specs_for(dag_id: str) -> dict[str, ParamSpec]:
    """The param table of one of Shopflow's DAGs."""
    try:
        return PARAMS_BY_DAG[dag_id]
    except KeyError:
        raise ParamError(
            f"unknown DAG {dag_id!r}; Shopflow DAGs: {', '.join(PARAMS_BY_DAG)}"
        ) from None


class ParamError(PermanentError, ValueError):
    """A run parameter is unknown, malformed or inconsistent with another one."""


def parse_param_assignments(
    assignments: list[str] | tuple[str, ...], specs: Mapping[str, ParamSpec] = TRAINING_PARAMS
) -> dict[str, Any]:
    """Turn CLI ``KEY=VALUE`` strings into typed run parameters.

    Values are read as JSON when they parse as JSON (``true``, ``0.01``, ``["xgboost"]``),
    otherwise as plain strings; a comma list is accepted for ``families``
    (``families=baseline,xgboost``). Validation of types and ranges is Airflow's job
    (the DAG's ``Param`` schemas); this only rejects what cannot be a parameter at all.

    Raises:
        ParamError: malformed assignment or unknown name (the message lists valid names).
    """
    params: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--param {item!r} is not KEY=VALUE")
        if key not in specs:
            raise ParamError(f"unknown parameter {key!r}; valid parameters: {', '.join(specs)}")
        params[key] = _parse_value(specs[key], key, raw.strip())
    return params


def _parse_value(spec: ParamSpec, key: str, raw: str) -> Any:
    types = [spec.type] if isinstance(spec.type, str) else list(spec.type)
    if raw == "" or raw.lower() in {"null", "none"}:
        return None if "null" in types else raw
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    if key in ("families", "recommend_families") and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if "boolean" in types and isinstance(value, str):
        lowered = value.lower()
        if lowered in {"yes", "y", "on"}:
            return True
        if lowered in {"no", "n", "off"}:
            return False
    if "string" in types and not {"number", "integer", "boolean", "array"} & set(types):
        return raw  # strings stay strings even when they look like JSON numbers
    return value


def resolve_params(
    params: Mapping[str, Any] | None, specs: Mapping[str, ParamSpec] = TRAINING_PARAMS
) -> dict[str, Any]:
    """Fill defaults, reject unknown keys and cross-field mistakes.

    Airflow validates each field against its schema; what a schema cannot say (a forced
    promotion needs a reason) is checked here, before any work starts.

    Raises:
        ParamError: unknown key, or ``force_promote`` without ``force_reason``.
    """
    given = dict(params or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise ParamError(
            f"unknown parameter(s) {unknown}; valid parameters: {', '.join(specs)}"
        )
    resolved = {name: given.get(name, spec.default) for name, spec in specs.items()}
    missing = [name for name, value in resolved.items() if value is REQUIRED]
    if missing:
        raise ParamError(f"missing required parameter(s): {', '.join(missing)}")
    if resolved.get("force_promote"):
        # imported here: only a forced run pays for gate 2's module (numpy)
        from shopflow.evaluation.gate import ForcedPromotionError, require_force_reason

        try:
            require_force_reason(True, resolved.get("force_reason"))
        except ForcedPromotionError as exc:
            raise ParamError(f"force_promote=true needs force_reason: {exc}") from exc
    if "reason" in specs and len(str(resolved.get("reason") or "").strip()) < 3:
        raise ParamError("a reason of at least 3 characters is required (kept in the ledger)")
    if resolved.get("families") is not None:
        bad = sorted(set(resolved["families"]) - set(MODEL_FAMILIES))
        if bad or not resolved["families"]:
            raise ParamError(
                f"families must be a non-empty list of {list(MODEL_FAMILIES)}; got "
                f"{resolved['families']!r}"
            )
    if resolved.get("recommend_families") is not None:
        bad = sorted(set(resolved["recommend_families"]) - set(RANKER_FAMILIES))
        if bad or not resolved["recommend_families"]:
            raise ParamError(
                f"recommend_families must be a non-empty list of {list(RANKER_FAMILIES)}; "
                f"got {resolved['recommend_families']!r}"
            )
    return resolved


def settings_overrides(
    params: Mapping[str, Any], specs: Mapping[str, ParamSpec] = TRAINING_PARAMS
) -> dict[str, Any]:
    """Nested keyword overrides for :func:`shopflow.settings.load_settings`."""
    overrides: dict[str, Any] = {}
    for name, spec in specs.items():
        value = params.get(name)
        if spec.setting is None or value is None:
            continue
        section, key = spec.setting.split(".", 1)
        overrides.setdefault(section, {})[key] = value
    return overrides


def settings_from_params(
    params: Mapping[str, Any] | None, specs: Mapping[str, ParamSpec] = TRAINING_PARAMS
) -> Settings:
    """The settings a task of this run works with (config file + params on top).

    Raises:
        ParamError: bad parameters.
        shopflow.settings.ConfigError: the config file is missing or invalid.
    """
    from shopflow.settings import load_settings

    resolved = resolve_params(params, specs)
    settings = load_settings(resolved.get("config"), **settings_overrides(resolved, specs))
    settings.ensure_dirs()
    return settings
