"""The direct reader's vectorised decoding equals the one-by-one decoding of Feast values."""

from __future__ import annotations

import numpy as np
from feast.protos.feast.types.Value_pb2 import Value

from shopflow.features.online_read import _decode, decode_values


def _records() -> list[bytes | None]:
    doubles = [Value(double_val=x).SerializeToString()
               for x in (0.0, -1.5, 1e300, float("inf"), 3.25)]
    others = [Value(int64_val=7).SerializeToString(), Value(bool_val=True).SerializeToString(),
              Value(float_val=2.5).SerializeToString(), Value(string_val="x").SerializeToString(),
              Value(int64_val=123456789).SerializeToString()]
    return [doubles[0], None, b"", doubles[1], others[0], doubles[2], others[1], doubles[3],
            others[2], others[3], doubles[4], others[4]]


def test_mixed_records_decode_as_one_by_one() -> None:
    records = _records()
    expected = np.array([_decode(v) for v in records])
    got = decode_values(records)
    np.testing.assert_array_equal(got, expected)
    assert got[4] == 7.0 and got[6] == 1.0 and np.isnan(got[[1, 2, 9]]).all()


def test_all_doubles_take_the_vectorised_path_exactly() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500)
    records: list[bytes | None] = [Value(double_val=float(x)).SerializeToString()
                                   for x in values]
    assert {len(r) for r in records if r is not None} == {9}
    np.testing.assert_array_equal(decode_values(records), values)
    assert decode_values([]).shape == (0,)
