"""Verified models: the ledger's sha256 of each stored file is checked before it is loaded.

Real BentoML model store, real ledger (SQLite), real serving runtime; the tampering is a
real change of bytes on disk (a different, valid pickle: what an attacker would write).
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from alert_sinks import WebhookReceiver
from shopflow.ledger import Ledger
from shopflow.registry import COMPILED_FILE, MODEL_FILE, ModelTampered, load_compiled, load_model
from shopflow.registry.digest import file_sha256
from shopflow.registry.store import MODEL_NAME, get_ref
from shopflow.serving.sandbox import (
    build_recommender_sandbox,
    publish_model,
    synthetic_user_features,
    train_tiny_model,
    write_online_features,
)

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration]


def _stored(settings: Settings, version: str) -> Path:
    return Path(get_ref(settings, MODEL_NAME, version).path)


def _publish(settings: Settings, seed: int, **kwargs: object) -> str:
    frame = synthetic_user_features(40, seed=seed)
    model, base_rate = train_tiny_model(frame, seed=seed)
    return publish_model(settings, model, base_rate=base_rate, **kwargs)  # type: ignore[arg-type]


def _integrity_rejections(settings: Settings, version: str) -> list[dict]:
    with Ledger(settings.ledger_url) as ledger:
        return [e.details for e in ledger.events(kind="rejection", version=version)
                if e.details.get("gate") == "integrity"]


def test_registration_records_digests_and_a_changed_model_file_is_refused(
        settings: Settings) -> None:
    hook = WebhookReceiver().start()
    settings = settings.model_copy(update={"alerts": settings.alerts.model_copy(
        update={"webhook_url": hook.url, "timeout": 5.0})})
    try:
        _refused_and_alerted(settings, hook)
    finally:
        hook.stop()


def _refused_and_alerted(settings: Settings, hook: WebhookReceiver) -> None:
    version = _publish(settings, seed=1)
    folder = _stored(settings, version)
    with Ledger(settings.ledger_url) as ledger:
        recorded = ledger.candidate(version).artefacts
    assert recorded[MODEL_FILE] == file_sha256(folder / MODEL_FILE)
    assert recorded[COMPILED_FILE] == file_sha256(folder / COMPILED_FILE)
    assert load_model(settings, version).family == "baseline"  # verified, loads

    # another valid model pickled over the file: loads fine by itself, refused here
    other, _ = train_tiny_model(synthetic_user_features(40, seed=9), seed=9, c=5.0)
    (folder / MODEL_FILE).write_bytes(pickle.dumps(other))
    with pytest.raises(ModelTampered, match="sha256"):
        load_model(settings, version)
    (details,) = _integrity_rejections(settings, version)
    assert details["files"][MODEL_FILE]["expected"] == recorded[MODEL_FILE]
    assert details["files"][MODEL_FILE]["actual"] == file_sha256(folder / MODEL_FILE)
    assert hook.events() == ["integrity"]  # and a person is told


def test_a_changed_compiled_file_is_refused_and_a_missing_one_too(settings: Settings) -> None:
    version = _publish(settings, seed=2)
    folder = _stored(settings, version)
    assert load_compiled(settings, version) is not None
    (folder / COMPILED_FILE).write_bytes((folder / COMPILED_FILE).read_bytes() + b"\0")
    with pytest.raises(ModelTampered):
        load_compiled(settings, version)
    assert load_model(settings, version) is not None  # the model file itself is intact
    (folder / COMPILED_FILE).unlink()
    assert load_compiled(settings, version) is None  # none stored: nothing to unpickle


def test_the_service_keeps_serving_the_previous_model_when_the_next_is_tampered(
        settings: Settings) -> None:
    from shopflow.serving.runtime import ServingRuntime

    write_online_features(settings, synthetic_user_features(30, seed=3))
    first = _publish(settings, seed=3)
    runtime = ServingRuntime(settings, poll=False)
    runtime.start()
    try:
        assert runtime.version == first
        second = _publish(settings, seed=4)
        model_file = _stored(settings, second) / MODEL_FILE
        model_file.write_bytes(model_file.read_bytes() + b"\0")  # unpickles the same
        runtime.poll_once()
        assert runtime.version == first  # refused: the previous good model still serves
        refusal = runtime.alias_refusal()
        assert refusal is not None and "sha256" in refusal.reason
    finally:
        runtime.stop()
    assert _integrity_rejections(settings, second)


def test_a_changed_recommender_snapshot_is_refused(settings: Settings) -> None:
    from shopflow.recommend.store import MODEL_NAME as RECOMMENDER_STORE_NAME
    from shopflow.recommend.store import RecommenderLoadError, load_recommender

    sandbox = build_recommender_sandbox(settings, [f"u{i}" for i in range(20)])
    version = sandbox.versions[-1]
    assert load_recommender(settings, version)[0] is not None
    folder = Path(get_ref(settings, RECOMMENDER_STORE_NAME, version).path)
    snapshot_file = next(p for p in sorted(folder.rglob("*.parquet")))
    snapshot_file.write_bytes(snapshot_file.read_bytes() + b"\0")
    with pytest.raises(RecommenderLoadError, match="sha256"):
        load_recommender(settings, version)
    with Ledger(settings.ledger_url) as ledger:
        (event,) = [e for e in ledger.events(kind="rejection", version=version,
                                             model="recommender")
                    if e.details.get("gate") == "integrity"]
    assert snapshot_file.relative_to(folder).as_posix() in event.details["files"]


def test_a_model_registered_before_digests_loads_unverified_with_a_warning(
        settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    version = _publish(settings, seed=5)
    with Ledger(settings.ledger_url) as ledger:  # as an old ledger's row: no digests
        with ledger.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE shopflow_candidates SET artefacts = NULL")
        assert ledger.candidate(version).artefacts == {}
    with caplog.at_level(logging.WARNING, logger="shopflow.registry.digest"):
        assert load_model(settings, version) is not None
    assert "loaded unverified" in caplog.text
