"""A self-contained HTML page of one gate run (no scripts, no external assets).

GX Data Docs load Bootstrap, jQuery and icons from CDNs, so on an offline machine they
render unstyled and their index (built by JavaScript) stays empty; GX also marks a suite
"Failed" when only warnings failed. This page is the gate's own verdict, readable
anywhere: the headline, failed checks first, then every check.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopflow.quality.result import CheckResult, GateResult

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem}
.verdict{padding:.6rem 1rem;border-radius:6px;font-weight:600;display:inline-block}
.pass{background:#e6f4ea;color:#137333} .fail{background:#fce8e6;color:#a50e0e}
.warn{background:#fef7e0;color:#8a5a00}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #ddd;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.r{font-weight:600;white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}
dt{font-weight:600} code{font-size:.85rem}
"""


def _row(check: CheckResult) -> str:
    if check.success:
        css, word = "pass", "pass"
    elif check.severity == "error":
        css, word = "fail", "FAIL"
    else:
        css, word = "warn", "warn"
    cells = [check.table, check.check, check.severity, check.observed, check.expected]
    body = "".join(f"<td>{escape(c)}</td>" for c in cells)
    return f'<tr>{body}<td class="r {css}">{word}</td></tr>'


def _table(checks: list[CheckResult]) -> str:
    head = "".join(f"<th>{h}</th>" for h in
                   ("table", "check", "severity", "observed", "expected", "result"))
    rows = "\n".join(_row(c) for c in checks)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"


def render(result: GateResult) -> str:
    """The page as a string."""
    css = "pass" if result.success and not result.failed_warnings else (
        "warn" if result.success else "fail")
    failed = [c for c in result.checks if not c.success]
    facts = {
        "layer": result.layer,
        "batch": result.batch_id or "—",
        "started": result.started_at,
        "duration": f"{result.duration_s:.1f} s",
        "rows": ", ".join(f"{t}: {n:,}" for t, n in result.rows.items()),
        "compared with": result.baseline_batch or "— (no previous good batch)",
        "metrics": ", ".join(f"{k}={v:.4g}" for k, v in result.metrics.items() if v is not None),
        "quarantine": str(result.quarantine_path) if result.quarantine_path else "—",
        "GX Data Docs": str(result.data_docs_path) if result.data_docs_path else "—",
    }
    info = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts.items())
    notes = "".join(f"<li>{escape(n)}</li>" for n in result.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Shopflow quality gate: {escape(result.layer)}</title><style>{_STYLE}</style></head>
<body>
<h1>Shopflow quality gate — {escape(result.layer)}</h1>
<p class="verdict {css}">{escape(result.headline())}</p>
<dl>{info}</dl>
{f"<ul>{notes}</ul>" if notes else ""}
<h2>Checks that did not pass ({len(failed)})</h2>
{_table(failed) if failed else "<p>None.</p>"}
<h2>All checks ({len(result.checks)})</h2>
{_table(result.checks)}
</body></html>
"""
