"""Shopper ids out of what a gate keeps: GX's sampled failing values, pseudonymized.

A failing row-wise check samples up to 20 offending values (``partial_unexpected_list``)
into its result; on a user-id column those are raw shopper ids, and from the result they
would reach the gate's message, its JSON/HTML report, the ledger (a failed task's reason),
GX's stored validation results and Data Docs. They are replaced here, in place, by their
keyed-hash tokens (:class:`shopflow.privacy.IdHasher`) right after the checkpoint runs
and before anything is stored again or rendered. A token is still text, still tells
equal ids apart, and can be matched with ``shopflow forget``'s record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopflow.privacy import USER_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shopflow.privacy import IdHasher

#: Result keys holding sampled values (lists of values, or of ``{"value", "count"}``).
_VALUE_LISTS = ("partial_unexpected_list", "unexpected_list")
_COUNT_LISTS = ("partial_unexpected_counts", "unexpected_counts")
#: Checks whose observed value is a column's type name (on a SQL datasource), never an id.
_TYPE_CHECKS = ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type")


def checked_columns(kwargs: dict[str, Any]) -> set[str]:
    """The columns an expectation's kwargs name (single, pair or compound checks)."""
    named = [kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B"),
             *(kwargs.get("column_list") or [])]
    return {str(c) for c in named if c}


def pseudonymize_result(result: dict[str, Any], hash_id: IdHasher, *,
                        observed: bool = True) -> None:
    """Replace the sampled values in one expectation's ``result`` by their tokens;
    ``observed``: the observed value too (False: it is no value of the column)."""
    for key in _VALUE_LISTS:
        if result.get(key):
            result[key] = [hash_id.value(v) for v in result[key]]
    for key in _COUNT_LISTS:
        if result.get(key):
            result[key] = [{**c, "value": hash_id.value(c.get("value"))} for c in result[key]]
    value = result.get("observed_value")
    if observed and isinstance(value, str):
        result["observed_value"] = hash_id.value(value)


def pseudonymize_suite_results(suite_results: Iterable[Any], hash_id: IdHasher) -> int:
    """Pseudonymize every check on a user-id column in GX suite results; returns how many
    expectation results were touched."""
    touched = 0
    for suite_result in suite_results:
        for outcome in suite_result.results:
            kwargs = dict(outcome.expectation_config.kwargs)
            if not checked_columns(kwargs) & USER_COLUMNS or not outcome.result:
                continue
            pseudonymize_result(outcome.result, hash_id,
                                observed=outcome.expectation_config.type not in _TYPE_CHECKS)
            touched += 1
    return touched
