"""Where a pipeline run keeps its records: one JSON file per stage under the reports folder.

Tasks hand each other paths and ids through XCom, never frames; what a stage did (rows,
gate verdicts, leaderboard, decision, seconds) is written to
``reports_dir/runs/<run_id>/stages/<stage>.json`` so the CLI summary, a failure callback and a
person reading the folder all see the same record, whichever process ran the task.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import TYPE_CHECKING

from shopflow import atomic
from shopflow.pipeline.vocabulary import StageRecord

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_run_id(run_id: str) -> str:
    """A run id usable as a folder and model-version component (Airflow's has ``:`` and ``+``)."""
    cleaned = _UNSAFE.sub("_", run_id).strip("._")
    if not cleaned:
        raise ValueError(f"run id {run_id!r} has no usable characters")
    return cleaned[:200]


def run_dir(settings: Settings, run_id: str) -> Path:
    """The folder of one run's records (created)."""
    path = settings.reports_dir / "runs" / safe_run_id(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_record(settings: Settings, run_id: str, record: StageRecord) -> Path:
    """Write (or overwrite: a retried stage replaces its record) one stage record."""
    folder = run_dir(settings, run_id) / "stages"
    folder.mkdir(exist_ok=True)
    path = folder / f"{_UNSAFE.sub('_', record.stage)}.json"
    return atomic.write_json(path, asdict(record), indent=2)


def read_records(settings: Settings, run_id: str) -> dict[str, StageRecord]:
    """All stage records of a run, by stage name (empty if the run wrote none)."""
    folder = settings.reports_dir / "runs" / safe_run_id(run_id) / "stages"
    records: dict[str, StageRecord] = {}
    if not folder.is_dir():
        return records
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        records[data["stage"]] = StageRecord(**data)
    return records
