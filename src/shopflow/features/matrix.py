"""Frame -> float64 matrix: the one conversion every model input goes through.

Training (``shopflow.training.pipeline``), the propensity model
(:meth:`shopflow.training.model.PropensityModel.matrix`), the rankers
(:meth:`shopflow.recommend.rankers.RankerModel.matrix`) and the drift checks all turn
frame columns into float64 the same way, so a value a model was trained on is the value
it is scored and monitored on: booleans become 0.0/1.0, numbers stay, anything else
(unparseable text, None, ``pd.NA``) and absent columns become NaN, which every model
family handles. The serving hot path (``shopflow.features.online.get_online_matrix``)
never holds a frame: it copies float64 arrays from the online store and needs none of
this.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd


def numeric_values(column: pd.Series) -> np.ndarray:
    """One column as float64: booleans 0/1, numbers as they are, the rest NaN.

    Booleans (also pandas' nullable ``boolean``) are cast first because ``pd.to_numeric``
    leaves them boolean; nullable integer or boolean NA becomes NaN.
    """
    import pandas as pd

    if column.dtype == bool or str(column.dtype) == "boolean":
        column = column.astype("float64")
    values: np.ndarray = pd.to_numeric(column, errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return values


def feature_matrix(frame: pd.DataFrame, columns: Sequence[str],
                   rows: np.ndarray | None = None) -> np.ndarray:
    """``frame[columns]`` as a C-ordered float64 matrix of shape ``(len(frame), len(columns))``.

    Columns are taken by name in the given order; a column the frame lacks is all NaN
    (callers that must refuse such input check names first, as
    ``PropensityModel.matrix`` does). With ``rows`` (positions), only those rows, in that
    order: the same values as ``feature_matrix(frame.iloc[rows], columns)`` without
    copying every column of those rows first (training takes a subset of millions).
    """
    count = len(frame) if rows is None else len(rows)
    out = np.full((count, len(columns)), np.nan, dtype=np.float64)
    for j, name in enumerate(columns):
        if name in frame.columns:
            values = numeric_values(frame[name])
            out[:, j] = values if rows is None else values[rows]
    return out
