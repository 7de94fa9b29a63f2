"""SLAC, MEME, FUBAR, Contrast-FEL, MULTI-HIT and BGM modules: options, command lines, and
summaries/tables/plots on real HyPhy 2.5.47 JSON.

The JSON under tests/data/hyphy/*_integrase.json was written by HyPhy 2.5.47 on
/usr/share/hyphy/data/integrase_BDA.nex (11 sequences x 288 codons; for Contrast-FEL its tree
labelled {A} on the three A1 tips and {B} on the two B tips), trimmed to the keys the modules
read. Every expected number below is computed from that raw JSON in the test itself.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.methods.base import BranchSets, HyPhyMethod, InputContext
from datamonkey_chat.analyses.validation import Problem, ValidationReport

DATA = Path(__file__).parent.parent / "data" / "hyphy"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def method(method_id: str) -> HyPhyMethod:
    return registry()[method_id]


def context(
    labels: dict[str, str] | None = None,
    data_type: str = "nucleotide",
    problems: list[Problem] | None = None,
) -> InputContext:
    report = ValidationReport(
        kind="alignment",
        format="fasta",
        data_type=data_type,  # type: ignore[arg-type]
        sequences=11,
        sites=864,
        codons=288,
        problems=problems or [],
    )
    return InputContext(alignment=report, tree_available=True, branch_sets=BranchSets(labels or {}))


def refused(method_id: str, body: dict[str, Any]) -> set[str]:
    """The option names pydantic refuses in `body`."""
    with pytest.raises(ValidationError) as info:
        method(method_id).options(body)
    return {str(e["loc"][0]) for e in info.value.errors() if e["loc"]}


def plot_points(spec: dict[str, Any]) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = spec["data"]["values"]
    return values


# ---------------------------------------------------------------- SLAC


def slac_expected(data: dict[str, Any], threshold: float) -> tuple[list[int], list[int]]:
    """SLAC.bf's rule: min of RESOLVED and AVERAGED p; negative tested before positive."""
    tables = data["MLE"]["content"]["0"]["by-site"]
    names = [h[0] for h in data["MLE"]["headers"]]
    pos, neg = names.index("P [dN/dS > 1]"), names.index("P [dN/dS < 1]")
    coverage = data["data partitions"]["0"]["coverage"][0]
    positive, negative = [], []
    for site, r, a in zip(coverage, tables["RESOLVED"], tables["AVERAGED"], strict=True):
        if min(r[neg], a[neg]) <= threshold:
            negative.append(site + 1)
        elif min(r[pos], a[pos]) <= threshold:
            positive.append(site + 1)
    return positive, negative


def test_slac_options_follow_upstream() -> None:
    slac = method("slac")
    defaults = slac.options({})
    assert (defaults.samples, defaults.pvalue, defaults.branches) == (100, 0.1, [])  # type: ignore[attr-defined]
    # SlacRequest's example body (datamonkey-api-1.2.0.yaml) without user_token/alignment/tree
    example = {"genetic_code": "Universal", "pvalue": 0.6027456183070403, "branches": ["b"]}
    assert slac.options({**example, "samples": 1}).samples == 1  # type: ignore[attr-defined]
    assert refused("slac", {"pvalue": 5}) == {"pvalue"}
    assert refused("slac", {"samples": 0}) == {"samples"}
    assert refused("slac", {"bogus": 1}) == {"bogus"}
    options = slac.options({"genetic_code": "Vertebrate mtDNA", "branches": ["Fg"], "samples": 7})
    args = slac.arguments(options, context({"Fg": "FG"}))
    assert args == {"code": "Vertebrate-mtDNA", "samples": 7, "pvalue": 0.1, "branches": "FG"}
    problems = slac.input_problems(slac.options({"branches": ["nope"]}), context({"Fg": "FG"}))
    assert [p.code for p in problems] == ["branch_label_missing"]


def test_slac_uses_the_smaller_of_resolved_and_averaged_p() -> None:
    data = load("slac_tables_integrase.json")
    slac = method("slac")
    for threshold in (0.1, 0.25):
        summary = slac.summarize(data, slac.options({"pvalue": threshold}))
        positive, negative = slac_expected(data, threshold)
        assert summary.positive_sites == positive  # type: ignore[attr-defined]
        assert summary.negative_sites == negative  # type: ignore[attr-defined]
        assert f"{len(negative)} sites under negative" in summary.summary_text
    # at 0.25 the AVERAGED table decides a site the RESOLVED table alone would not call
    tables = data["MLE"]["content"]["0"]["by-site"]
    resolved_only = [
        i + 1 for i, r in enumerate(tables["RESOLVED"]) if r[9] <= 0.25 or r[8] <= 0.25
    ]
    _, negative = slac_expected(data, 0.25)
    assert set(negative) - set(resolved_only)


def test_slac_table_and_plot_cover_every_site() -> None:
    data = load("slac_tables_integrase.json")
    slac = method("slac")
    options = slac.options({})
    table = slac.table(data, options)
    width = len(data["MLE"]["headers"])
    assert len(table.rows) == data["input"]["number of sites"]
    assert len(table.columns) == 2 + 2 * width and all(
        len(r) == len(table.columns) for r in table.rows
    )
    assert "P [dN/dS < 1] (averaged)" in table.columns
    (plot,) = slac.plots(slac.summarize(data, options))
    assert len(plot_points(plot)) == data["input"]["number of sites"]


# ---------------------------------------------------------------- FUBAR


def test_fubar_options_follow_upstream_then_hyphy() -> None:
    fubar = method("fubar")
    defaults = fubar.options({})
    assert fubar.arguments(defaults, context()) == {
        "code": "Universal",
        "grid": 20,
        "method": "Variational-Bayes",
        "concentration_parameter": 0.5,
        "non-zero": "No",
    }
    # FubarRequest's example body
    example = {"genetic_code": "Universal", "grid_points": 8, "concentration_parameter": 0.6031}
    assert fubar.options(example).grid_points == 8  # type: ignore[attr-defined]
    assert refused("fubar", {"grid_points": 51}) == {"grid_points"}
    assert refused("fubar", {"concentration_parameter": 0}) == {"concentration_parameter"}
    assert refused("fubar", {"posterior": 1.5}) == {"posterior"}
    mcmc = fubar.options({"method": "Metropolis-Hastings", "chain_length": 10_000, "chains": 2})
    args = fubar.arguments(mcmc, context())
    assert (args["chains"], args["chain-length"], args["burn-in"], args["samples"]) == (
        2,
        10_000,
        5_000,
        100,
    )
    assert "chains" not in fubar.arguments(fubar.options({"method": "Collapsed-Gibbs"}), context())
    with pytest.raises(ValidationError, match="burn_in"):
        fubar.options({"method": "Collapsed-Gibbs", "chain_length": 10_000, "burn_in": 9_999})


def test_fubar_summary_counts_posteriors() -> None:
    data = load("fubar_integrase.json")
    fubar = method("fubar")
    names = [h[0] for h in data["MLE"]["headers"]]
    pos, neg = names.index("Prob[alpha<beta]"), names.index("Prob[alpha>beta]")
    rows = data["MLE"]["content"]["0"]
    for threshold in (0.9, 0.5):
        expected_pos = [i + 1 for i, r in enumerate(rows) if r[pos] >= threshold]
        expected_neg = [
            i + 1 for i, r in enumerate(rows) if r[neg] >= threshold and r[pos] < threshold
        ]
        summary = fubar.summarize(data, fubar.options({"posterior": threshold}))
        assert summary.positive_sites == expected_pos  # type: ignore[attr-defined]
        assert summary.negative_sites == expected_neg  # type: ignore[attr-defined]
        expected_fp = sum(1 - rows[s - 1][pos] for s in expected_pos)
        assert summary.expected_false_positives == pytest.approx(expected_fp, abs=1e-4)  # type: ignore[attr-defined]
        assert f"posterior probability >= {threshold:g}" in summary.summary_text
    assert any("not p-values" in c for c in summary.caveats)
    assert any("Only 11 sequences" in c for c in summary.caveats)
    table = fubar.table(data, fubar.options({}))
    assert table.columns[2:] == names and len(table.rows) == len(rows)
    assert all(len(r) == len(table.columns) for r in table.rows)
    plots = fubar.plots(summary)
    assert [len(plot_points(p)) for p in plots] == [len(rows)] * 2


# ---------------------------------------------------------------- BGM


def test_bgm_options_follow_upstream_with_hyphy_ranges() -> None:
    bgm = method("bgm")
    defaults = bgm.options({})
    assert bgm.arguments(defaults, context()) == {
        "type": "codon",
        "steps": 100_000,
        "burn-in": 10_000,
        "samples": 100,
        "max-parents": 1,
        "min-subs": 1,
        "code": "Universal",
    }
    # BgmRequest's example body: HyPhy refuses steps 0, samples 1 (< 100) and max_parents 5 (> 3)
    example = {
        "genetic_code": "Universal",
        "max_parents": 5,
        "min_subs": 5,
        "burn_in": 6,
        "data_type": "codon",
        "branches": "All",
        "steps": 0,
        "samples": 1,
    }
    assert refused("bgm", example) == {"steps", "samples", "max_parents"}
    assert bgm.options({**example, "steps": 1000, "samples": 100, "max_parents": 3})
    with pytest.raises(ValidationError, match="steps - burn_in"):
        bgm.options({"steps": 1000, "burn_in": 950})
    protein = bgm.options({"data_type": "amino-acid", "branches": "Fg"})
    args = bgm.arguments(protein, context({"Fg": "FG"}, data_type="protein"))
    assert args["type"] == "amino-acid" and args["branches"] == "FG" and "code" not in args
    assert bgm.input_problems(protein, context({"Fg": "FG"}, data_type="protein")) == []
    wrong = bgm.input_problems(bgm.options({}), context(data_type="protein"))
    assert [p.code for p in wrong] == ["wrong_data_type"]
    frame = Problem(
        code="not_codon_aligned", message="length not a multiple of 3", severity="warning"
    )
    codon_problems = bgm.input_problems(bgm.options({}), context(problems=[frame]))
    assert [(p.code, p.severity) for p in codon_problems] == [("not_codon_aligned", "error")]
    assert (
        bgm.input_problems(bgm.options({"data_type": "nucleotide"}), context(problems=[frame]))
        == []
    )


def test_bgm_summary_reports_pairs_at_the_threshold() -> None:
    data = load("bgm_integrase.json")
    bgm = method("bgm")
    names = [h[0] for h in data["MLE"]["headers"]]
    both = names.index("P [Site 1 <–> Site 2]")
    rows = data["MLE"]["content"]
    analysed = {r[0] for r in rows} | {r[1] for r in rows}
    assert len(rows) == len(analysed) * (len(analysed) - 1) // 2  # one row per pair
    for threshold in (0.5, 0.3):
        expected = sorted(
            ((r[0], r[1]) for r in rows if r[both] >= threshold),
            key=lambda pair: -next(r[both] for r in rows if (r[0], r[1]) == pair),
        )
        summary = bgm.summarize(data, bgm.options({"posterior": threshold}))
        assert [(p["site_1"], p["site_2"]) for p in summary.pairs] == expected  # type: ignore[attr-defined]
        assert summary.analysed_sites == len(analysed)  # type: ignore[attr-defined]
        assert f"among {len(analysed)} codons" in summary.summary_text
    assert "pair_series" not in summary.brief() and "pairs" in summary.brief()
    (plot,) = bgm.plots(summary)
    assert len(plot_points(plot)) == sum(1 for r in rows if r[both] >= 0.1)
    table = bgm.table(data, bgm.options({}))
    assert table.columns == names and len(table.rows) == len(rows)


def test_bgm_without_a_network_says_so() -> None:
    data = {k: v for k, v in load("bgm_integrase.json").items() if k != "MLE"}
    bgm = method("bgm")
    summary = bgm.summarize(data, bgm.options({}))
    assert "inferred no network" in summary.summary_text
    assert summary.pairs == [] and bgm.table(data, bgm.options({})).rows == []  # type: ignore[attr-defined]
    assert math.isfinite(len(bgm.plots(summary)))


# ---------------------------------------------------------------- Contrast-FEL


def test_contrast_fel_options_take_several_branch_sets() -> None:
    cfel = method("contrast-fel")
    defaults = cfel.options({})
    assert (defaults.p_value, defaults.q_value, defaults.branch_sets) == (0.05, 0.2, [])  # type: ignore[attr-defined]
    # ContrastFelRequest's example body: q_value 6.03 is outside HyPhy's range [0, 1]
    example = {
        "p_value": 0.8008281904610115,
        "genetic_code": "Universal",
        "srv": "Yes",
        "q_value": 6.027456183070403,
        "permutations": "Yes",
        "branch_sets": ["branch_sets", "branch_sets"],
    }
    assert refused("contrast-fel", example) == {"q_value"}
    assert cfel.options({**example, "q_value": 0.6}).branch_sets == ["branch_sets"] * 2  # type: ignore[attr-defined]
    assert refused("contrast-fel", {"srv": "maybe"}) == {"srv"}
    labels = context({"Source": "SOURCE", "Test": "TEST"})
    two = cfel.options({"branch_sets": ["source", "Test"], "permutations": "No"})
    assert cfel.arguments(two, labels) == {
        "code": "Universal",
        "srv": "Yes",
        "permutations": "No",
        "p-value": 0.05,
        "q-value": 0.2,
        "branch-set": ["SOURCE", "TEST"],  # one --branch-set flag per set
    }
    one = cfel.arguments(cfel.options({"branch_sets": ["Test"]}), labels)
    assert one["branch-set"] == "TEST"
    assert cfel.arguments(cfel.options({"branch_sets": ["Test", "background"]}), labels)[
        "branch-set"
    ] == ["TEST", "Unlabeled branches"]
    assert [p.code for p in cfel.input_problems(defaults, labels)] == ["branch_sets_required"]
    missing = cfel.input_problems(cfel.options({"branch_sets": ["Test", "Other"]}), labels)
    assert [p.code for p in missing] == ["branch_label_missing"] and "Other" in missing[0].message


def test_contrast_fel_summary_reads_p_and_q_values() -> None:
    data = load("contrast_fel_integrase.json")
    cfel = method("contrast-fel")
    names = [h[0] for h in data["MLE"]["headers"]]
    p, q = names.index("P-value (overall)"), names.index("Q-value (overall)")
    perm = names.index("Permutation p-value")
    rows = data["MLE"]["content"]["0"]
    sets = [n[len("beta (") : -1] for n in names if n.startswith("beta (")]
    for p_max, q_max in ((0.05, 0.2), (0.5, 0.99)):
        options = cfel.options({"branch_sets": ["A", "B"], "p_value": p_max, "q_value": q_max})
        summary = cfel.summarize(data, options)
        significant = [i + 1 for i, r in enumerate(rows) if r[p] <= p_max]
        assert summary.significant_sites == significant  # type: ignore[attr-defined]
        assert summary.fdr_sites == [i + 1 for i, r in enumerate(rows) if r[q] <= q_max]  # type: ignore[attr-defined]
        assert summary.permutation_supported == [  # type: ignore[attr-defined]
            s for s in significant if 0 <= rows[s - 1][perm] <= p_max
        ]
        assert f"{len(significant)} sites differ at p <= {p_max:g}" in summary.summary_text
    assert summary.branch_sets == [s for s in sets if s != "background"]  # type: ignore[attr-defined]
    assert "dN/dS (omega) between A and B" in summary.summary_text
    rates = data["fits"]["Global MG94xREV"]["Rate Distributions"]
    for name in sets:
        key = f"non-synonymous/synonymous rate ratio for *{name}*"
        assert summary.omega[name] == pytest.approx(rates[key][0][0], abs=1e-4)  # type: ignore[attr-defined]
    (plot,) = cfel.plots(summary)
    assert len(plot_points(plot)) == len(rows)
    table = cfel.table(data, options)
    assert table.columns == ["site", "partition", *names] and len(table.rows) == len(rows)


# ---------------------------------------------------------------- MEME


def test_meme_options_follow_upstream() -> None:
    meme = method("meme")
    defaults = meme.options({})
    assert meme.arguments(defaults, context()) == {
        "code": "Universal",
        "pvalue": 0.1,
        "resample": 0,
    }
    # MemeRequest's example body: HyPhy 2.5.47's MEME has exactly two rate classes and takes
    # a whole number of bootstrap replicates
    example = {
        "genetic_code": "Universal",
        "impute_states": "No",
        "site_multihit": "Estimate",
        "multiple_hits": "None",
        "rates": 0,
        "resample": 6.027456183070403,
    }
    assert refused("meme", example) == {"rates", "resample"}
    assert meme.options({**example, "rates": 2, "resample": 6}).resample == 6  # type: ignore[attr-defined]
    assert refused("meme", {"multiple_hits": "Double"}) == {"multiple_hits"}
    assert refused("meme", {"resample": 1001}) == {"resample"}
    subset = meme.options({"branches": ["Internal"], "pvalue": 0.05})
    assert meme.arguments(subset, context())["branches"] == "Internal"


def test_meme_summary_names_the_branches_behind_each_site() -> None:
    data = load("meme_ebf_integrase.json")
    meme = method("meme")
    names = [h[0] for h in data["MLE"]["headers"]]
    p, count = names.index("p-value"), names.index("# branches under selection")
    rows = data["MLE"]["content"]["0"]
    for threshold in (0.1, 0.3):
        summary = meme.summarize(data, meme.options({"pvalue": threshold}))
        expected = [i + 1 for i, r in enumerate(rows) if r[p] <= threshold]
        assert summary.positive_sites == expected  # type: ignore[attr-defined]
        # our EBF >= 100 branches reproduce HyPhy's own count at every selected site
        by_site = summary.branches_by_site  # type: ignore[attr-defined]
        assert sorted(by_site) == expected
        assert [len(by_site[s]) for s in expected] == [rows[s - 1][count] for s in expected]
        branches = data["branch attributes"]["0"]
        assert all(b in branches for s in expected for b in by_site[s])
    assert "pervasive or episodic" in summary.summary_text
    assert "purifying" not in summary.summary_text
    assert any("resample" in c for c in summary.caveats)  # 11 sequences < 30
    (plot,) = meme.plots(summary)
    assert len(plot_points(plot)) == len(rows)
    table = meme.table(data, meme.options({}))
    assert table.columns[-1] == "branches with EBF >= 100" and len(table.rows) == len(rows)
    listed = [len(r[-1].split(";")) if r[-1] else 0 for r in table.rows]
    assert listed == [r[count] for r in rows]


# ---------------------------------------------------------------- MULTI-HIT


def test_multihit_options_follow_upstream() -> None:
    fmm = method("multi-hit")
    assert fmm.keyword == "fmm"
    defaults = fmm.options({})
    assert fmm.arguments(defaults, context()) == {
        "code": "Universal",
        "rates": 3,
        "triple-islands": "No",
    }
    # MultihitRequest's example body
    example = {"genetic_code": "Universal", "triple_islands": "No", "rate_classes": 1}
    assert fmm.arguments(fmm.options(example), context())["rates"] == 1
    assert refused("multi-hit", {"rate_classes": 11}) == {"rate_classes"}
    assert refused("multi-hit", {"triple_islands": "yes please"}) == {"triple_islands"}


def test_multihit_summary_reports_tests_rates_and_sites() -> None:
    # fmm_integrase60.json: HyPhy 2.5.47 fmm --rates 1 on integrase_BDA's first 60 codons
    data = load("fmm_integrase60.json")
    fmm = method("multi-hit")
    results = data["test results"]
    for threshold in (0.05, 0.9):
        summary = fmm.summarize(data, fmm.options({"pvalue": threshold}))
        tests = {t["test"]: t for t in summary.tests}  # type: ignore[attr-defined]
        assert set(tests) == set(results)
        for name, result in results.items():
            assert tests[name]["p"] == pytest.approx(result["p-value"], abs=1e-4)
            assert tests[name]["significant"] == (result["p-value"] <= threshold)
        double = results["Double-hit vs single-hit"]
        assert f"p = {double['p-value']:.3g}" in summary.summary_text
        supported = double["p-value"] <= threshold
        assert ("The data support double hits" in summary.summary_text) == supported
        assert ("no evidence of multi-nucleotide" in summary.summary_text) == (
            not any(r["p-value"] <= threshold for r in results.values())
        )
    parameters = data["fits"]["MG94 with double instantaneous substitutions"]["Rate Distributions"][
        "parameters"
    ]
    delta = parameters["rate at which 2 nucleotides are changed instantly within a single codon"]
    rates = summary.rates  # type: ignore[attr-defined]
    assert rates["MG94 with double instantaneous substitutions"]["double-hit rate"] == (
        pytest.approx(delta, abs=1e-4)
    )
    ratios = data["Evidence Ratios"]
    strong = sorted(
        {i + 1 for v in ratios.values() for i, x in enumerate(v[0]) if x > 0 and math.log(x) > 2}
    )
    assert summary.strong_sites == strong  # type: ignore[attr-defined]
    sites = len(ratios["Two-hit"][0])
    plots = fmm.plots(summary)
    assert len(plots) == 2 and len(plot_points(plots[1])) == len(results)
    assert {p["site"] for p in plot_points(plots[0])} <= set(range(1, sites + 1))
    table = fmm.table(data, fmm.options({}))
    assert len(table.rows) == sites and table.columns[:3] == ["site", "ER 2H vs 1H", "ER 3H vs 2H"]
    two_hit = table.columns.index("ER 2H vs 1H")
    assert [r[two_hit] for r in table.rows] == ratios["Two-hit"][0]
    assert len(table.columns) == 3 + len(data["Site Log Likelihood"])
