"""BUSTED, aBSREL, RELAX, GARD, FADE and Slatkin-Maddison modules: options, command lines and
summaries on real HyPhy JSON (tests/data/hyphy, produced by HyPhy 2.5 on small data).

Expected headline numbers are read here from the raw JSON, never through the modules.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.methods.base import BranchSets, InputContext
from datamonkey_chat.analyses.methods.gard import partition_charsets, partitioned_alignment
from datamonkey_chat.analyses.methods.slatkin import assign_groups, compartment_arguments
from datamonkey_chat.analyses.validation import ValidationReport

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "hyphy"
SPEC = ROOT.parent / "shared" / "contract" / "datamonkey-api-1.2.0.yaml"
BATCH_FILES = Path("/usr/share/hyphy/TemplateBatchFiles")
REQUESTS = {
    "busted": "BustedRequest",
    "absrel": "AbsrelRequest",
    "relax": "RelaxRequest",
    "gard": "GardRequest",
    "fade": "FadeRequest",
    "slatkin-maddison": "SlatkinRequest",
}
BF_FILES = {
    "busted": "SelectionAnalyses/BUSTED.bf",
    "absrel": "SelectionAnalyses/aBSREL.bf",
    "relax": "SelectionAnalyses/RELAX.bf",
    "gard": "GARD.bf",
    "fade": "SelectionAnalyses/FADE.bf",
    "slatkin-maddison": "SM-2019.bf",
}
# Upstream example values HyPhy 2.5 cannot run (field -> why it is refused)
EXAMPLE_REFUSED = {
    "absrel": {"blb"},  # no bag-of-little-bootstraps in HyPhy 2.5's aBSREL
    "relax": {"rates"},  # example says 0; RELAX.bf asks for 2-10 classes
    "gard": {"rate_classes"},  # example says 0; GARD.bf asks for 2-10
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def context(
    labels: dict[str, str] | None = None,
    data_type: str = "nucleotide",
    rooted: bool = False,
    tips: list[str] | None = None,
) -> InputContext:
    report = ValidationReport(
        kind="alignment", data_type=data_type, names=tips or [], tree_tips=tips or []
    )
    return InputContext(
        alignment=report,
        tree_available=True,
        tree_rooted=rooted,
        branch_sets=BranchSets(labels or {}),
    )


def spec_schemas() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip("the shared contract is not checked out beside the repository")
    return _schemas()


@cache
def _schemas() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the pure-Python one takes seconds
    schemas: dict[str, Any] = yaml.load(SPEC.read_text(), Loader=loader)["components"]["schemas"]
    return schemas


# ---------------------------------------------------------------- options


@pytest.mark.parametrize("method_id", sorted(REQUESTS))
def test_defaults_validate_and_fields_match_upstream(method_id: str) -> None:
    method = registry()[method_id]
    schema = spec_schemas()[REQUESTS[method_id]]
    upstream = set(schema["properties"]) - {"user_token", "alignment", "tree"}
    assert upstream <= set(method.Options.model_fields)
    options = method.options({})
    for name in upstream:
        default = schema["properties"][name].get("default")
        if default is not None and name != "genetic_code":
            assert getattr(options, name) == default, name


@pytest.mark.parametrize("method_id", sorted(REQUESTS))
def test_upstream_example_validates_except_values_hyphy_cannot_run(method_id: str) -> None:
    method = registry()[method_id]
    example = dict(spec_schemas()[REQUESTS[method_id]]["example"])
    for key in ("user_token", "alignment", "tree"):
        example.pop(key, None)
    refused = EXAMPLE_REFUSED.get(method_id, set())
    for name in refused:
        with pytest.raises(ValidationError) as caught:
            method.options({name: example[name]})
        assert caught.value.errors()[0]["loc"][0] == name
        example.pop(name)
    method.options(example)


@pytest.mark.parametrize(
    ("method_id", "field", "value"),
    [
        ("busted", "rates", 0),
        ("busted", "rates", 11),
        ("busted", "syn_rates", 0),
        ("busted", "srv", "Maybe"),
        ("busted", "grid_size", 0),
        ("busted", "error_sink", "Yes"),
        ("busted", "pvalue", 5),
        ("absrel", "pvalue", 1.5),
        ("absrel", "srv", "branch-site"),
        ("relax", "rates", 1),
        ("relax", "models", "Some"),
        ("relax", "mode", "Other"),
        ("gard", "data_type", "Codon"),
        ("gard", "site_to_site_variation", "Gamma"),
        ("gard", "model", "NotAModel"),
        ("fade", "bayes_factor_threshold", 0),
        ("fade", "grid", 4),
        ("fade", "method", "MCMC"),
        ("slatkin-maddison", "groups", 1),
        ("slatkin-maddison", "weight", 1.5),
        ("slatkin-maddison", "replicates", 0),
        ("slatkin-maddison", "compartment_definitions", [{"regexp": "(", "description": "a"}]),
        ("slatkin-maddison", "compartment_definitions", [{"regexp": "a", "description": "x;y"}]),
        (
            "slatkin-maddison",
            "compartment_definitions",
            [{"regexp": "a" * 201, "description": "a"}],
        ),
        (
            "slatkin-maddison",
            "compartment_definitions",
            [{"regexp": "(a+)+$", "description": "a"}],
        ),
        ("busted", "unknown_option", 1),
    ],
)
def test_bad_values_are_refused_naming_the_field(method_id: str, field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        registry()[method_id].options({field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def keywords(method_id: str) -> set[str]:
    path = BATCH_FILES / BF_FILES[method_id]
    if not path.exists():
        pytest.skip("HyPhy's batch files are not installed")
    texts = [path.read_text()]
    texts += [p.read_text() for p in (BATCH_FILES / "SelectionAnalyses" / "modules").glob("*.bf")]
    return {k for text in texts for k in re.findall(r'KeywordArgument\s*\(\s*"([^"]+)"', text)}


@pytest.mark.parametrize(
    ("method_id", "given", "expected"),
    [
        (
            "busted",
            {"srv": "branch-site", "rates": 2, "syn_rates": 4, "branches": ["Internal"]},
            {"srv": "Branch-site", "rates": 2, "syn-rates": 4, "branches": "Internal"},
        ),
        ("busted", {"srv": "No", "genetic_code": "Vertebrate mtDNA"}, {"code": "Vertebrate-mtDNA"}),
        ("absrel", {"branches": ["fg"], "srv": "Yes"}, {"branches": "FG", "syn-rates": 3}),
        (
            "relax",
            {"test_branches": ["fg"], "models": "Minimal", "kill_zero_lengths": "Yes"},
            {"test": "FG", "reference": "Unlabeled branches", "models": "Minimal"},
        ),
        (
            "gard",
            {"run_mode": "Faster", "site_to_site_variation": "General Discrete", "rate_classes": 3},
            {"type": "nucleotide", "mode": "Faster", "rv": "GDD", "rate-classes": 3},
        ),
        ("fade", {"grid": 10, "model": "JTT"}, {"grid": 10, "model": "JTT"}),
    ],
)
def test_arguments_map_options_to_flags_hyphy_knows(
    method_id: str, given: dict[str, Any], expected: dict[str, Any]
) -> None:
    method = registry()[method_id]
    options = method.options(given)
    ctx = context({"fg": "FG"}, data_type="protein" if method_id == "fade" else "nucleotide")
    assert method.input_problems(options, ctx) == [] or method_id == "fade"
    args = method.arguments(options, ctx)
    for flag, value in expected.items():
        assert args[flag] == value, flag
    assert set(args) <= keywords(method_id)
    if method_id == "busted" and given["srv"] == "No":
        assert "syn-rates" not in args


def test_gard_data_type_must_match_the_alignment() -> None:
    method = registry()["gard"]
    protein = method.options({"data_type": "Protein", "model": "LG"})
    args = method.arguments(protein, context(data_type="protein"))
    assert args["type"] == "amino-acid" and args["model"] == "LG"
    assert method.input_problems(protein, context(data_type="protein")) == []
    problems = method.input_problems(method.options({}), context(data_type="protein"))
    assert [p.code for p in problems] == ["wrong_data_type"] and "Protein" in problems[0].message
    problems = method.input_problems(protein, context())
    assert [p.code for p in problems] == ["wrong_data_type"]


def test_branch_sets_must_exist_and_one_per_run() -> None:
    busted = registry()["busted"]
    problems = busted.input_problems(busted.options({"branches": ["nope"]}), context({"fg": "FG"}))
    assert [p.code for p in problems] == ["branch_label_missing"]
    relax = registry()["relax"]
    problems = relax.input_problems(
        relax.options({"test_branches": ["a", "b"], "reference_branches": ["fg"]}),
        context({"fg": "FG", "a": "A", "b": "B"}),
    )
    assert "one_branch_set" in [p.code for p in problems]
    problems = relax.input_problems(relax.options({}), context({"fg": "FG"}))
    assert [p.code for p in problems] == ["branch_label_missing"]  # no TEST label
    args = relax.arguments(relax.options({}), context({"Test": "TEST", "Reference": "REFERENCE"}))
    assert (args["test"], args["reference"]) == ("TEST", "REFERENCE")


def test_busted_starting_points_bounded_by_grid() -> None:
    busted = registry()["busted"]
    problems = busted.input_problems(
        busted.options({"grid_size": 20, "starting_points": 5}), context()
    )
    assert [p.code for p in problems] == ["option_range"]


# ---------------------------------------------------------------- aBSREL


def test_absrel_subset_counts_only_tested_branches() -> None:
    data = load("absrel_internal_small.json")
    attributes = data["branch attributes"]["0"]
    tested = [b for b, kind in data["tested"]["0"].items() if kind == "test"]
    with_p = [b for b, a in attributes.items() if a.get("Corrected P-value") is not None]
    assert sorted(tested) == sorted(with_p) and len(with_p) < len(attributes)
    selected = [b for b in with_p if attributes[b]["Corrected P-value"] <= 0.05]

    method = registry()["absrel"]
    summary = method.summarize(data, method.options({"branches": ["Internal"]}))
    assert summary.tested_count == len(tested) == data["test results"]["tested"]
    assert summary.selected_count == len(selected)
    assert sorted(b["branch"] for b in summary.branches) == sorted(tested)
    assert f"of {len(tested)} tested branches" in summary.summary_text
    plot = method.plots(summary)[0]
    assert len(plot["data"]["values"]) == len(tested)
    assert all(v["corrected_p"] is not None for v in plot["data"]["values"])
    table = method.table(data, method.options({}))
    assert len(table.rows) == len(attributes)
    tested_column = table.columns.index("tested")
    assert sum(1 for r in table.rows if r[tested_column]) == len(tested)


def test_absrel_all_branches_fixture() -> None:
    data = load("absrel_integrase.json")
    attributes = data["branch attributes"]["0"]
    method = registry()["absrel"]
    summary = method.summarize(data, method.options({}))
    assert summary.tested_count == data["test results"]["tested"] == len(attributes)
    assert summary.selected_count == data["test results"]["positive test results"]


# ---------------------------------------------------------------- BUSTED


def test_busted_summary_with_evidence_ratios() -> None:
    data = load("busted_integrase_full.json")
    p = data["test results"]["p-value"]
    test_classes = data["fits"]["Unconstrained model"]["Rate Distributions"]["Test"]
    ratios = data["Evidence Ratios"]["constrained"][0]
    method = registry()["busted"]
    summary = method.summarize(data, method.options({}))
    assert summary.p_value == pytest.approx(p, abs=1e-6)
    assert summary.selected is (p <= 0.05)
    assert len([c for c in summary.omega_classes if c["branches"] == "Test"]) == len(test_classes)
    top = max(test_classes.values(), key=lambda c: c["omega"])
    assert f"{top['omega']:.4g}" in summary.summary_text
    assert len(summary.sites) == len(ratios) == data["input"]["number of sites"]
    assert summary.evidence_ratio_sites == [i + 1 for i, er in enumerate(ratios) if er > 10]
    plots = method.plots(summary)
    assert len(plots) == 2 and len(plots[1]["data"]["values"]) == len(ratios)
    table = method.table(data, method.options({}))
    assert len(table.rows) == len(ratios)


def test_busted_without_selection_has_no_site_ratios() -> None:
    data = load("busted_small_no_selection.json")
    method = registry()["busted"]
    summary = method.summarize(data, method.options({}))
    assert summary.p_value == pytest.approx(data["test results"]["p-value"])
    assert not summary.selected and summary.sites == []
    assert "found no evidence" in summary.summary_text
    assert len(method.plots(summary)) == 1


# ---------------------------------------------------------------- RELAX


def test_relax_summary() -> None:
    data = load("relax_small.json")
    results = data["test results"]
    k, p = results["relaxation or intensification parameter"], results["p-value"]
    method = registry()["relax"]
    summary = method.summarize(data, method.options({}))
    assert summary.k == pytest.approx(k, abs=1e-4)
    assert summary.p_value == pytest.approx(p, abs=1e-6)
    if p > 0.05:
        assert summary.direction == "none"
        assert "no evidence" in summary.summary_text
        assert "no change" not in summary.summary_text
    else:
        assert summary.direction == ("relaxation" if k < 1 else "intensification")
    sets = {c["branches"] for c in summary.omega_classes}
    assert sets == {"Test", "Reference"}
    assert method.plots(summary)[0]["data"]["values"] == summary.omega_classes


def test_relax_no_evidence_wording_above_threshold() -> None:
    data = load("relax_integrase.json")  # p = 0.0137
    method = registry()["relax"]
    strict = method.summarize(data, method.options({"pvalue": 0.01}))
    assert strict.direction == "none" and "no evidence" in strict.summary_text
    loose = method.summarize(data, method.options({}))
    k = data["test results"]["relaxation or intensification parameter"]
    assert loose.direction == ("relaxation" if k < 1 else "intensification")


# ---------------------------------------------------------------- GARD


def gard_expected(data: dict[str, Any]) -> list[tuple[int, int]]:
    """1-based segments as HyPhy's partition export writes them (alignments.bf)."""
    bps = [data["breakpointData"][k]["bps"][0] for k in sorted(data["breakpointData"], key=int)]
    breakpoints = [end for _, end in bps[:-1]]  # 0-based site indices
    n = data["input"]["number of sites"]
    starts = [0, *(b + 1 for b in breakpoints)]
    ends = [*breakpoints, n - 1]
    return [(s + 1, e + 1) for s, e in zip(starts, ends, strict=True)]


def test_gard_coordinates_are_one_based_like_hyphys_partition_file() -> None:
    data = load("gard_recombinant.json")
    nexus = (DATA / "gard_recombinant.best-gard").read_text()
    expected = gard_expected(data)
    assert partition_charsets(nexus) == expected
    method = registry()["gard"]
    summary = method.summarize(data, method.options({}))
    assert [(s["start"], s["end"]) for s in summary.segments] == expected
    assert summary.breakpoint_count == len(expected) - 1 >= 1
    for segment, point in zip(summary.segments, summary.breakpoints, strict=False):
        after = segment["end"]
        assert point["after"] == after
        assert point["between_codons"] is (after % 3 == 0)
        assert point["support"] == pytest.approx(
            data["siteBreakPointSupport"][str(after - 1)], abs=1e-4
        )
        assert f"after nucleotide {after}" in summary.summary_text
    gain = data["singleTreeAICc"] - data["bestModelAICc"]
    assert summary.caic_improvement_single_tree == pytest.approx(gain, abs=0.01)
    assert f"{gain:.2f}" in summary.summary_text
    segments_plot, support_plot = method.plots(summary)
    assert len(segments_plot["data"]["values"]) == len(expected)
    assert len(support_plot["data"]["values"]) == len(data["siteBreakPointSupport"])
    table = method.table(data, method.options({}))
    assert [(r[1], r[2]) for r in table.rows] == expected


def test_gard_partitioned_alignment_is_hyphys_nexus() -> None:
    nexus = (DATA / "gard_recombinant.best-gard").read_text()
    text = partitioned_alignment(nexus)
    assert text.startswith("#NEXUS")
    assert partition_charsets(text) == partition_charsets(nexus)
    assert "BEGIN TREES" in text.upper() and text.rstrip().endswith("END;")
    assert "LikelihoodFunction" not in text


# ---------------------------------------------------------------- FADE


def test_fade_needs_a_rooted_tree() -> None:
    fade = registry()["fade"]
    problems = fade.input_problems(fade.options({}), context(data_type="protein", rooted=False))
    assert [p.code for p in problems] == ["tree_not_rooted"]
    assert fade.input_problems(fade.options({}), context(data_type="protein", rooted=True)) == []


def test_fade_summary_bayes_factors_per_site_and_residue() -> None:
    data = load("fade_small.json")
    headers = [h[0] for h in data["MLE"]["headers"]]
    bf = headers.index("BayesFactor[bias>0]")
    content = data["MLE"]["content"]
    rows = [
        (site + 1, residue, row[bf])
        for residue, parts in content.items()
        for site, row in enumerate(parts["0"])
    ]
    method = registry()["fade"]
    for threshold in (100, 5):
        summary = method.summarize(data, method.options({"bayes_factor_threshold": threshold}))
        expected = sorted((s, r) for s, r, b in rows if b >= threshold)
        assert [(p["site"], p["residue"]) for p in summary.selected] == expected
        assert summary.selected_sites == sorted({s for s, _ in expected})
        assert summary.residues_tested == len(content)
    assert len(method.plots(summary)[0]["data"]["values"]) == len(rows)
    table = method.table(data, method.options({}))
    assert len(table.rows) == len(rows)
    assert table.columns[:2] == ["site", "target residue"]


# ---------------------------------------------------------------- Slatkin-Maddison


def test_slatkin_groups_become_exact_alternations_of_safe_ids() -> None:
    method = registry()["slatkin-maddison"]
    names = {"lung_1": "SEQ00001", "lung_2": "SEQ00002", "blood_1": "SEQ00003", "x": "SEQ00004"}
    options = method.options(
        {
            "compartment_definitions": [
                {"regexp": "^lung", "description": "Lung"},
                {"regexp": "blood|lung", "description": "Blood"},
            ]
        }
    )
    groups, unmatched = assign_groups(options.compartment_definitions, list(names))
    assert groups == [["lung_1", "lung_2"], ["blood_1"]] and unmatched == ["x"]
    args = compartment_arguments(options.compartment_definitions, names)
    assert args["regexp-1"] == "^(SEQ00001|SEQ00002)$"
    assert args["regexp-2"] == "^(SEQ00003)$"
    assert args["description-1"] == "Lung"
    ctx = context(tips=list(names))
    full = method.arguments(options, ctx)
    assert full["groups"] == 2 and set(full) <= keywords("slatkin-maddison") | {
        "description-1",
        "description-2",
        "regexp-1",
        "regexp-2",
    }
    bad = method.options(
        {"groups": 3, "compartment_definitions": [{"regexp": "^lung", "description": "L"}]}
    )
    assert [p.code for p in method.input_problems(bad, ctx)] == ["compartments"]
    empty = method.options(
        {
            "compartment_definitions": [
                {"regexp": "^lung", "description": "L"},
                {"regexp": "^brain", "description": "B"},
            ]
        }
    )
    assert "compartment_empty" in [p.code for p in method.input_problems(empty, ctx)]


def test_slatkin_summary() -> None:
    data = load("sm_integrase_tree.json")
    null = [row[0] for row in data["simulations"]["panmictic"]]
    method = registry()["slatkin-maddison"]
    summary = method.summarize(data, method.options({}))
    assert summary.migrations == data["migrations"]
    assert summary.p_panmictic == pytest.approx(data["p-value"]["panmictic"], abs=1e-6)
    assert summary.p_structured == pytest.approx(data["p-value"]["structured"], abs=1e-6)
    assert summary.compartments == data["partition-counts"]
    assert summary.null_mean == pytest.approx(sum(null) / len(null), abs=1e-4)
    assert sum(b["count"] for b in summary.null_distribution) == data["replicates"]
    assert f"at least {data['migrations']} migration events" in summary.summary_text
    plot = method.plots(summary)[0]
    assert plot["layer"][1]["data"]["values"] == [{"observed": data["migrations"]}]
    table = method.table(data, method.options({}))
    assert len(table.rows) == len(data["node-migrations"])
    assert not math.isnan(summary.p_panmictic or math.nan)


def test_gard_segments_become_fasta_datasets() -> None:
    data = load("gard_recombinant.json")
    records = [("a", "ACGT" * 75), ("b", "TTGA" * 75)]
    derived = registry()["gard"].derived_datasets(data, records, "rec.fas")
    expected = gard_expected(data)
    assert len(derived) == len(expected)
    for dataset, (start, end) in zip(derived, expected, strict=True):
        lines = dataset.fasta.splitlines()
        assert lines[0] == ">a" and lines[1] == records[0][1][start - 1 : end]
        assert f"{start}-{end}" in dataset.name
