"""The feature store on marts that dbt really built: the column contract holds end to end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from shopflow.cli import cli
from shopflow.features import (
    apply,
    build_training_set,
    get_online_user_features,
    load_label_entities,
    materialize,
)
from shopflow.features.schema import USER_TABLE

if TYPE_CHECKING:
    from shopflow.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_generated_events_to_training_set_and_online_reads(settings: Settings) -> None:
    from shopflow.transform.publish import publish_marts

    runner = CliRunner()
    events = settings.data_dir / "events.parquet"
    for args in (
        ["generate", "--events", "6000", "--days", "45", "--seed", "3", "--out", str(events), "--no-progress"],
        ["ingest", "--path", str(events)],
        ["transform"],
    ):
        done = runner.invoke(cli, args, catch_exceptions=False)
        assert done.exit_code == 0, f"{args}: {done.output[-2000:]}"
    publish_marts(settings)

    apply(settings)
    result = materialize(settings)
    assert result.by_view("user_features_fv").entities > 0
    entities = load_label_entities(settings)
    assert len(entities) > 0
    frame = build_training_set(settings, entities)
    assert len(frame) == len(entities)
    # Every labelled row is a user_features row at the same cutoff: nothing may be missing
    # but the days since a purchase of a customer who never bought.
    nullable = [f.name for f in USER_TABLE.catalogue if f.nullable]
    assert not frame[USER_TABLE.feature_names].drop(columns=nullable).isna().any().any()
    never_bought = frame["purchases_lifetime"] == 0
    assert (frame["days_since_last_purchase"].isna() == never_bought).all()
    assert (frame["recency_days"] >= 0).all()

    users = entities["user_id"].drop_duplicates().head(20).tolist()
    online = get_online_user_features(settings, [*users, "not-a-user"])
    assert online["known"].tolist() == [True] * len(users) + [False]
