"""Shared code of the per-branch methods (aBSREL, RELAX).

HyPhy writes one mapping per data partition under `branch attributes.<n>`: branch name ->
its attributes (numbers, strings, and nested values such as rate distributions). Only
partition 0 is read: these methods fit one tree to the whole alignment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from datamonkey_chat.analyses.methods.base import SummaryError, Table

Attributes = dict[str, Any]
Column = Callable[[Attributes], Any]  # a computed column, from one branch's attributes


def branch_attributes(data: dict[str, Any]) -> dict[str, Any]:
    """Branch name -> its attributes (a value that is not a mapping is left to the caller)."""
    try:
        attributes = data["branch attributes"]["0"]
    except (KeyError, TypeError) as exc:
        raise SummaryError("result JSON has no 'branch attributes'") from exc
    if not isinstance(attributes, dict):
        raise SummaryError("result JSON's 'branch attributes' is not a mapping")
    return attributes


def branch_table(
    data: dict[str, Any],
    leading: Mapping[str, Column] | None = None,
    trailing: Mapping[str, Column] | None = None,
) -> Table:
    """One row per branch, sorted by name: `branch`, the `leading` computed columns, every
    scalar attribute HyPhy reports for any branch (sorted by name), then the `trailing` ones."""
    attributes = branch_attributes(data)
    leading, trailing = leading or {}, trailing or {}
    keys = sorted(
        {
            key
            for values in attributes.values()
            if isinstance(values, dict)
            for key, value in values.items()
            if not isinstance(value, dict | list)
        }
    )
    rows = [
        [
            branch,
            *(column(values) for column in leading.values()),
            *(values.get(k) for k in keys),
            *(column(values) for column in trailing.values()),
        ]
        for branch, values in sorted(attributes.items())
        if isinstance(values, dict)
    ]
    return Table(columns=["branch", *leading, *keys, *trailing], rows=rows)
