"""What a gate found: one ``CheckResult`` per expectation, a ``GateResult`` per run.

These types are plain data (no GX objects), so the pipeline can turn them into JSON, the
CLI can print them, and a ``GateFailed`` can carry them across an Airflow task boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from shopflow.errors import PermanentError

if TYPE_CHECKING:
    from pathlib import Path

Layer = Literal["raw", "staging", "marts"]
LAYERS: tuple[Layer, ...] = ("raw", "staging", "marts")


class QualityError(RuntimeError):
    """The gate could not run at all (missing table, unknown layer, unreadable baseline).

    Distinct from :class:`GateFailed`: nothing was judged, so nothing was quarantined.
    """


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one expectation.

    Attributes:
        table: what was validated (``raw.raw_events``, ``raw.batch_metrics``, ...).
        check: the check's short name from the suite's ``meta``.
        expectation: the GX expectation type.
        column: the column checked, if any.
        severity: ``error`` (blocks) or ``warning`` (reported).
        success: whether the expectation held.
        observed: what the data showed, in words and numbers.
        expected: what the suite asked for.
        unexpected_count: rows breaking the expectation (map expectations only).
        unexpected_percent: their share in percent.
        examples: a few offending values, as text.
        exception: why the check could not be evaluated (e.g. a missing column).
        key: the configuration key that sets the check's threshold (or what it checks);
            None for a fixed rule of the event contract.
    """

    table: str
    check: str
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str
    expected: str
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: list[str] = field(default_factory=list)
    exception: str | None = None
    key: str | None = None

    @property
    def blocking(self) -> bool:
        """Failed with severity ``error``."""
        return not self.success and self.severity == "error"

    @property
    def knob(self) -> str:
        """What a person changes to move this check: its configuration key, named."""
        if self.key is None:
            return "fixed rule of the event contract, docs/DESIGN.md §2"
        kind = "threshold" if self.key.startswith("quality.") else "config"
        return f"{kind}: {self.key}"

    def describe(self) -> str:
        """One line for messages and logs: what failed, observed vs expected, its key."""
        where = f"{self.table}: {self.check}"
        return (f"[{self.severity}] {where} — observed {self.observed}; expected "
                f"{self.expected} ({self.knob})")


@dataclass
class GateResult:
    """The outcome of one gate run on one layer.

    Attributes:
        layer: ``raw``, ``staging`` or ``marts``.
        batch_id: the raw batch validated (None for staging/marts and whole-table checks).
        success: no ``error`` check failed.
        checks: every check, in suite order (tables in gate order, batch metrics last).
        metrics: batch metrics (duplicate rate, PSI values, ...) as computed.
        rows: rows validated per table.
        started_at: ISO time (UTC) the gate started.
        duration_s: wall time of the whole gate.
        baseline_batch: the last good batch compared against (None on a first run).
        report_path: the compact JSON report.
        data_docs_path: the Data Docs index (HTML).
        quarantine_path: where a blocked batch (or a blocked build's record) went.
        notes: things worth knowing that are not checks (e.g. "no baseline yet").
    """

    layer: str
    batch_id: str | None
    success: bool
    checks: list[CheckResult]
    metrics: dict[str, float | None] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    started_at: str = ""
    duration_s: float = 0.0
    baseline_batch: str | None = None
    report_path: Path | None = None
    data_docs_path: Path | None = None
    quarantine_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def failed_errors(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    @property
    def failed_warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success and c.severity != "error"]

    def headline(self) -> str:
        """One line: layer, verdict, and how many checks failed."""
        batch = f" (batch {self.batch_id})" if self.batch_id else ""
        errors, warnings = len(self.failed_errors), len(self.failed_warnings)
        if errors:
            return (
                f"quality gate '{self.layer}'{batch} FAILED: {errors} error check"
                f"{'s' if errors != 1 else ''} failed ({warnings} warning"
                f"{'s' if warnings != 1 else ''}, {len(self.checks)} checks)"
            )
        return (
            f"quality gate '{self.layer}'{batch} passed: {len(self.checks)} checks, "
            f"{warnings} warning{'s' if warnings != 1 else ''}"
        )

    def where_to_look(self) -> list[str]:
        """Where the gate put what it found: quarantine, JSON report (+ .html), Data Docs."""
        places = [("quarantined to", self.quarantine_path),
                  ("report", f"{self.report_path} (+ .html)" if self.report_path else None),
                  ("data docs", self.data_docs_path)]
        return [f"  {label}: {where}" for label, where in places if where is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report file, the pipeline's task summary)."""
        data = asdict(self)
        for key in ("report_path", "data_docs_path", "quarantine_path"):
            data[key] = str(data[key]) if data[key] is not None else None
        data["failed_errors"] = len(self.failed_errors)
        data["failed_warnings"] = len(self.failed_warnings)
        data["headline"] = self.headline()
        return data


class GateFailed(PermanentError, RuntimeError):
    """An ``error`` check failed: the pipeline must stop here.

    The message's first line names the layer and the number of failed checks; each
    following line is one failed ``error`` check with observed vs expected values, then
    where the report, Data Docs and the quarantined batch are.

    Attributes:
        result: the full :class:`GateResult`.
    """

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__(format_failure(result))

    def __reduce__(self) -> tuple[Any, ...]:
        # Picklable across process boundaries (Airflow, multiprocessing) with its result.
        return (type(self), (self.result,))


def format_failure(result: GateResult) -> str:
    """The text of a :class:`GateFailed`: headline, failed errors, then where to look."""
    lines = [result.headline()]
    errors = result.failed_errors
    # A missing column makes every other check on it fail too; say so once.
    missing = {c.column for c in errors if c.expectation == "expect_column_to_exist"}
    knock_on = [c for c in errors
                if c.column in missing and c.expectation != "expect_column_to_exist"]
    for item in errors:
        if item in knock_on:
            continue
        lines.append(f"  - {item.table}: {item.check}: observed {item.observed}; "
                     f"expected {item.expected} ({item.knob})")
    if knock_on:
        lines.append(f"  - {len(knock_on)} more check(s) on missing column(s) "
                     f"{', '.join(sorted(str(c) for c in missing))} could not run")
    if missing:
        # an unexpected column next to a missing one is usually the same column renamed
        lines += [f"  - (warning) {c.table}: {c.check}: observed {c.observed}"
                  for c in result.failed_warnings
                  if c.expectation == "expect_table_columns_to_match_set"]
    if result.failed_warnings:
        lines.append(f"  ({len(result.failed_warnings)} warning(s) in the report)")
    return "\n".join([*lines, *result.where_to_look()])


def format_table(result: GateResult, *, only_failed: bool = False, width: int = 48) -> str:
    """A plain-text table of the checks: check, severity, observed, expected, result."""
    rows = [c for c in result.checks if not (only_failed and c.success)]
    header = ("table", "check", "severity", "observed", "expected", "result")

    def clip(text: str, limit: int) -> str:
        return text if len(text) <= limit else text[: limit - 1] + "…"

    cells = [
        (
            c.table,
            clip(c.check, width),
            c.severity,
            clip(c.observed, width),
            clip(c.expected, width),
            "pass" if c.success else ("FAIL" if c.severity == "error" else "warn"),
        )
        for c in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in cells]
    return "\n".join(out)
