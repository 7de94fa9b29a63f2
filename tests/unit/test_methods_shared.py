"""The helpers the method modules share: plot skeleton, per-site verdicts, branch tables."""

from __future__ import annotations

from typing import Any

import pytest

from datamonkey_chat.analyses.methods import SHARED_MODULES, registry
from datamonkey_chat.analyses.methods.base import VEGA_LITE_SCHEMA, SummaryError, plot
from datamonkey_chat.analyses.methods.branches import branch_table
from datamonkey_chat.analyses.methods.sites import Row, Verdict, select_sites
from datamonkey_chat.analyses.service import brief_summary


def test_plot_has_the_v6_skeleton_and_extra_keys() -> None:
    spec = plot("T", [{"a": 1}], "bar", {"x": {"field": "a"}}, height=50, transform=[])
    assert spec == {
        "$schema": VEGA_LITE_SCHEMA,
        "title": "T",
        "width": "container",
        "height": 50,
        "data": {"values": [{"a": 1}]},
        "mark": "bar",
        "encoding": {"x": {"field": "a"}},
        "transform": [],
    }
    assert VEGA_LITE_SCHEMA.endswith("/vega-lite/v6.json")


def sites_data(rows: list[list[float]], coverage: list[list[int]]) -> dict[str, Any]:
    """Two partitions of one-column rows, covering the given 0-based sites."""
    half = len(coverage[0])
    return {
        "MLE": {"headers": [["x", ""]], "content": {"0": rows[:half], "1": rows[half:]}},
        "data partitions": {str(i): {"coverage": [c]} for i, c in enumerate(coverage)},
    }


def test_select_sites_keeps_the_method_verdict_and_the_positive_rows() -> None:
    data = sites_data([[5.0], [-2.0], [0.0], [7.0]], [[0, 1], [4, 9]])

    def verdict(row: Row) -> Verdict:
        return "positive" if row[0] > 1 else "negative" if row[0] < -1 else "none"

    selection = select_sites(data, verdict, lambda row: {"x": row[0]})
    assert selection.positive == [1, 10]
    assert [(partition, site) for partition, site, _ in selection.positive_rows] == [
        (0, 1),
        (1, 10),
    ]
    assert selection.negative == [2]
    assert selection.series[1] == {"site": 2, "x": -2.0, "selection": "negative"}
    assert list(selection.series[0]) == ["site", "x", "selection"]  # tooltip order
    fields = selection.selected_fields()
    assert (fields["tested_sites"], fields["positive_count"], fields["negative_count"]) == (4, 2, 1)


def test_branch_table_puts_computed_columns_around_the_scalar_attributes() -> None:
    data = {
        "branch attributes": {
            "0": {
                "b": {"LRT": 2.0, "Rate Distributions": [[1, 1]]},
                "a": {"p": 0.5, "LRT": 1.0},
                "attributes": "not a branch",
            }
        }
    }
    table = branch_table(
        data, leading={"has_p": lambda v: "p" in v}, trailing={"n": lambda v: len(v)}
    )
    assert table.columns == ["branch", "has_p", "LRT", "p", "n"]
    assert table.rows == [["a", True, 1.0, 0.5, 2], ["b", False, 2.0, None, 2]]
    with pytest.raises(SummaryError):
        branch_table({"branch attributes": {}})


def test_shared_modules_are_not_methods() -> None:
    assert "branches" in SHARED_MODULES
    assert not SHARED_MODULES & set(registry())


def test_a_stored_summary_brief_drops_the_series_its_model_declares() -> None:
    stored = {"method": "BGM", "pairs": [1], "pair_series": [1, 2], "sites": [3], "plots": [{}]}
    assert brief_summary("bgm", stored) == {"method": "BGM", "pairs": [1], "sites": [3]}
    assert brief_summary("fel", stored) == {"method": "BGM", "pairs": [1], "pair_series": [1, 2]}
    # a job of a method this server no longer runs: the default series fields
    assert brief_summary("gone", {"branches": [], "text": "t", "plots": []}) == {"text": "t"}
