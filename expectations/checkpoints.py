"""Checkpoint definitions: which tables each layer's gate validates, and its actions.

A gate is one GX checkpoint per layer: one validation definition per table (plus one over
the batch metrics). It has no actions: the sampled failing values of checks on a user-id
column are raw shopper ids, so ``shopflow.quality.validate`` pseudonymizes them in the
stored results first and renders Data Docs itself afterwards. Results are not acted on
here either: ``shopflow.quality.gate`` reads them, decides by severity and quarantines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import great_expectations as gx

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class TableCheck:
    """One table a layer's gate validates.

    Attributes:
        layer: warehouse layer holding the table (schema before the prefix).
        table: table (or view) name.
    """

    layer: str
    table: str

    @property
    def asset_name(self) -> str:
        return f"{self.layer}.{self.table}"


#: The tables behind each gate, in the order they are validated and reported.
#: ``marts.user_features_v1`` (the frozen propensity_v1 features) is left out on purpose:
#: its SQL does not change, its dbt data tests (one row per key, counts, rates, nested
#: windows, times inside the lookback, no future events) fail ``dbt build`` before this
#: gate runs, and validating a second copy of the user mart would double the gate's cost.
GATE_TABLES: dict[str, tuple[TableCheck, ...]] = {
    "raw": (TableCheck("raw", "raw_events"),),
    "staging": (TableCheck("staging", "stg_shop__events"),),
    "marts": (
        TableCheck("marts", "user_features"),
        TableCheck("marts", "item_features"),
        TableCheck("marts", "purchase_labels"),
    ),
}


def build_checkpoint(
    *,
    layer: str,
    validation_definitions: Sequence[gx.ValidationDefinition],
) -> gx.Checkpoint:
    """The checkpoint of a layer's gate.

    Args:
        layer: ``raw``, ``staging`` or ``marts``.
        validation_definitions: one per table, plus the batch metrics one.
    """
    return gx.Checkpoint(
        name=f"{layer}_gate",
        validation_definitions=list(validation_definitions),
        actions=[],
        result_format="SUMMARY",
    )
