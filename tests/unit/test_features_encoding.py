"""The bulk writers produce exactly the bytes Feast's own code produces."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from shopflow.features import online_write
from shopflow.features.store import redis_connection_string


@pytest.mark.parametrize("ids", [["17850", "u1", "", "ünïcødé-42", "a" * 300]])
def test_entity_keys_match_feast_serialization(ids: list[str]) -> None:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    ours = online_write.encode_entity_keys("user_id", ids)
    theirs = [
        serialize_entity_key(
            EntityKey(join_keys=["user_id"], entity_values=[Value(string_val=i)]),
            entity_key_serialization_version=3,
        )
        for i in ids
    ]
    assert ours == theirs


def test_double_values_match_feast_protos_and_nan_is_null() -> None:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    values = np.array([[0.0, -1.5, math.nan], [1e300, 5e-324, 3.25]])
    ours = online_write.encode_double_values(values)
    theirs = [
        v.SerializeToString()
        for v in python_values_to_proto_values(values.ravel().tolist(), ValueType.DOUBLE)
    ]
    assert ours == theirs
    assert ours[2] == b""  # NaN: Feast's empty Value, read back as null


def test_value_text_matches_feast_str() -> None:
    values = np.array([[0.1, 2.0, math.nan, 1e-05]])
    assert online_write._value_texts(values) == ["0.1", "2.0", None, "1e-05"]


def test_timestamp_bytes_match_feast() -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    for stamp in ["2011-12-09T12:50:00", "2024-01-01T00:00:00.250000", "1999-12-31T23:59:59"]:
        expected = Timestamp()
        expected.FromDatetime(datetime.fromisoformat(stamp).replace(tzinfo=UTC))
        assert online_write.timestamp_proto_bytes(np.datetime64(stamp)) == expected.SerializeToString()


def test_sqlite_epoch_matches_feast_adapter() -> None:
    from feast.infra.online_stores.sqlite import adapt_datetime_epoch

    stamp = np.datetime64("2011-12-09T12:50:00")
    naive = datetime(2011, 12, 9, 12, 50)
    assert online_write._sqlite_epoch(stamp) == adapt_datetime_epoch(naive)


def test_redis_hset_command_parses_as_feast_layout() -> None:
    """A RESP command built in bulk decodes to the fields Feast's writer would set."""
    import hiredis
    from feast.infra.online_stores.helpers import _mmh3

    names = ["a", "b", "c"]
    values = np.array([[1.0, math.nan, 3.0], [4.0, 5.0, 6.0]])
    heads = [online_write._resp_bulk(_mmh3(f"fv:{n}")) for n in names]
    bodies = online_write._resp_field_runs(heads, values)
    reader = hiredis.Reader()
    for body in bodies:
        reader.feed(b"*8\r\n$4\r\nHSET\r\n$1\r\nk\r\n" + body)
    first, second = reader.gets(), reader.gets()
    assert first[:2] == [b"HSET", b"k"]
    assert first[2::2] == [_mmh3(f"fv:{n}") for n in names]
    assert first[3::2] == online_write.encode_double_values(values[:1])
    assert first[5] == b""
    assert second[3::2] == online_write.encode_double_values(values[1:])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        ("redis://127.0.0.1:6380/2", "127.0.0.1:6380,db=2"),
        ("redis://:secret@cache:6379", "cache:6379,password=secret"),
        ("rediss://cache", "cache:6379,ssl=true"),
        ("redis://shopflow-serve:p%40ss@redis:6379/0",
         "redis:6379,db=0,username=shopflow-serve,password=p@ss"),
    ],
)
def test_redis_url_forms(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected


def test_redis_url_rejects_other_schemes() -> None:
    from shopflow.features.store import FeatureStoreError

    with pytest.raises(FeatureStoreError, match="unsupported scheme"):
        redis_connection_string("http://127.0.0.1:6379")
