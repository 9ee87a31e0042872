"""Packaging pieces without a Bento build: the ledger's Bento tag (old ledgers gain the
column), the pin a Bento carries, the packaged model load (digests checked without a
ledger), and the pipeline's packaging step failing softly."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from shopflow.ledger import Ledger, LedgerError
from shopflow.serving.alias_follower import ModelRefused
from shopflow.serving.packaged import PIN_FILE, BentoPin, PinError, PinnedModel, read_pin, write_pin

if TYPE_CHECKING:
    from pathlib import Path

    from shopflow.settings import Settings


def test_an_old_ledger_gains_the_bento_column_and_status_shows_the_tag(
        settings: Settings) -> None:
    with Ledger(settings.ledger_url) as ledger:  # a ledger from before packaging
        ledger.record_candidate(version="old-1", family="baseline", metrics={})
        ledger.promote("old-1", actor="a", reason="first model")
    engine = sa.create_engine(settings.ledger_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("alter table shopflow_candidates drop column bento")
    engine.dispose()
    with Ledger(settings.ledger_url) as ledger:
        assert ledger.status()["production"]["bento"] is None
        ledger.record_bento("old-1", "shopflow_propensity:abc")
        status = ledger.status()
        assert status["production"]["bento"] == "shopflow_propensity:abc"
        assert status["candidates"][0]["bento"] == "shopflow_propensity:abc"
        with pytest.raises(LedgerError, match="'nope'"):
            ledger.record_bento("nope", "shopflow_propensity:abc")
    from shopflow.cli.status import render

    with Ledger(settings.ledger_url) as again:
        assert "bento:    shopflow_propensity:abc" in render(again.status())


def test_the_pin_round_trips_and_names_a_missing_field(tmp_path: Path) -> None:
    assert read_pin(tmp_path) is None  # the repository's services/: follow the ledger
    pin = BentoPin(propensity=PinnedModel(version="v1", tag="shopflow-propensity:v1",
                                          artefacts={"model.pkl": "ab"}, metrics={"auc": 0.7}),
                   packaged_at="2026-01-01T00:00:00+00:00", code_version="abc")
    write_pin(tmp_path, pin)
    assert read_pin(tmp_path) == pin
    data = json.loads((tmp_path / PIN_FILE).read_text())
    del data["propensity"]["tag"]
    (tmp_path / PIN_FILE).write_text(json.dumps(data))
    with pytest.raises(PinError, match="propensity.tag"):
        read_pin(tmp_path)


def test_a_packaged_model_loads_from_its_folder_and_a_changed_file_is_refused(
        settings: Settings, tmp_path: Path) -> None:
    from shopflow.registry import model_info
    from shopflow.registry.digest import artefact_digests
    from shopflow.serving.sandbox import publish_model, synthetic_user_features, train_tiny_model
    from shopflow.serving.served import load_packaged_model, load_served_model

    frame = synthetic_user_features(30)
    model, base_rate = train_tiny_model(frame)
    version = publish_model(settings, model, base_rate=base_rate)
    with Ledger(settings.ledger_url) as ledger:
        ledger.update_candidate_metrics(version, {"base_rate": 0.25})
        record = ledger.candidate(version)
    assert record is not None
    info = model_info(settings, version)
    pin = PinnedModel(version=version, tag=info.tag, artefacts=record.artefacts,
                      metrics=record.metrics, directory=info.path, metadata=info.metadata)
    packaged, served = load_packaged_model(pin), load_served_model(settings, version)
    assert (packaged.version, packaged.feature_names, packaged.metrics) == (
        served.version, served.feature_names, served.metrics)
    assert (packaged.cold_start_probability, packaged.cold_start_source) == (
        served.cold_start_probability, served.cold_start_source)
    assert packaged.compiled is not None and packaged.inference_reason == "not checked yet"
    assert set(pin.artefacts) == set(artefact_digests(info.path))
    tampered = PinnedModel(version=version, tag=info.tag,
                           artefacts={**record.artefacts, "model.pkl": "0" * 64},
                           directory=info.path, metadata=info.metadata)
    with pytest.raises(ModelRefused, match="model.pkl"):
        load_packaged_model(tampered)


def test_packaging_after_gate_3_fails_softly(settings: Settings) -> None:
    from shopflow.serving.bento import package_after_deploy

    result = package_after_deploy(settings, "not-a-version")
    assert result["bento"] is None
    assert "version: 'not-a-version' is not a propensity candidate" in result["error"]
