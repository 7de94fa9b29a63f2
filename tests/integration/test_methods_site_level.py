"""SLAC, MEME, FUBAR, Contrast-FEL, MULTI-HIT and BGM on real HyPhy, through the lead's harness.

Inputs are small (a codon subset of integrase_BDA, 11 sequences) and options cheap (few SLAC
samples, no Contrast-FEL permutations, one MULTI-HIT rate class, a short BGM chain) so CI's
HyPhy budget holds. Each test reads HyPhy's JSON itself and checks the summary's headline
numbers against that reading, never through the module's code.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from tests.integration.method_harness import HYPHY_AVAILABLE, INTEGRASE, codon_subset, run_method

pytestmark = [
    pytest.mark.hyphy,
    pytest.mark.skipif(not HYPHY_AVAILABLE, reason="HyPhy and its example data are not installed"),
]

CODONS = 60
FEW_CODONS = 30  # for the slower methods (MEME, Contrast-FEL, MULTI-HIT)
A_CLADE = ("A1_KE_99_KNH1088", "A1_KE_99_KSM4021", "A1_KE_99_KNH1135")


def small(tmp_path: Path, codons: int = CODONS) -> tuple[Path, Path]:
    """The first `codons` codons as FASTA, and integrase_BDA's own tree as Newick."""
    fasta = codon_subset(INTEGRASE, codons, tmp_path / "integrase.fas")
    match = re.search(r"Tree \w+ = (.*?;)", INTEGRASE.read_text())
    assert match
    tree = tmp_path / "integrase.nwk"
    tree.write_text(match.group(1) + "\n")
    return fasta, tree


def columns(data: dict, *names: str) -> list[int]:  # type: ignore[type-arg]
    headers = [h[0] for h in data["MLE"]["headers"]]
    return [headers.index(n) for n in names]


async def test_slac_calls_sites_by_the_smaller_p(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path)
    run = await run_method("slac", fasta, tmp_path, tree, {"samples": 5, "pvalue": 0.2})
    pos, neg = columns(run.data, "P [dN/dS > 1]", "P [dN/dS < 1]")
    tables = run.data["MLE"]["content"]["0"]["by-site"]
    positive, negative = [], []
    for i, (r, a) in enumerate(zip(tables["RESOLVED"], tables["AVERAGED"], strict=True)):
        if min(r[neg], a[neg]) <= 0.2:
            negative.append(i + 1)
        elif min(r[pos], a[pos]) <= 0.2:
            positive.append(i + 1)
    summary = run.summary.model_dump()
    assert (summary["positive_sites"], summary["negative_sites"]) == (positive, negative)
    assert summary["tested_sites"] == CODONS and len(run.table.rows) == CODONS
    assert len(run.plots[0]["data"]["values"]) == CODONS
    print(f"SLAC HyPhy run: {run.seconds:.1f} s")


async def test_meme_lists_sites_and_their_branches(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path, FEW_CODONS)
    run = await run_method("meme", fasta, tmp_path, tree, {"pvalue": 0.5})
    p, count = columns(run.data, "p-value", "# branches under selection")
    rows = run.data["MLE"]["content"]["0"]
    expected = [i + 1 for i, r in enumerate(rows) if r[p] <= 0.5]
    summary = run.summary.model_dump()
    assert summary["positive_sites"] == expected
    by_site = {int(k): v for k, v in summary["branches_by_site"].items()}
    assert [len(by_site[s]) for s in expected] == [rows[s - 1][count] for s in expected]
    assert "pervasive or episodic" in summary["summary_text"]
    assert len(run.plots[0]["data"]["values"]) == FEW_CODONS
    print(f"MEME HyPhy run: {run.seconds:.1f} s")


async def test_fubar_counts_posteriors(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path)
    run = await run_method("fubar", fasta, tmp_path, tree, {"grid_points": 10, "posterior": 0.8})
    pos, neg = columns(run.data, "Prob[alpha<beta]", "Prob[alpha>beta]")
    rows = run.data["MLE"]["content"]["0"]
    summary = run.summary.model_dump()
    assert summary["positive_sites"] == [i + 1 for i, r in enumerate(rows) if r[pos] >= 0.8]
    assert summary["negative_sites"] == [
        i + 1 for i, r in enumerate(rows) if r[neg] >= 0.8 and r[pos] < 0.8
    ]
    assert run.data["settings"]["grid size"] == 10  # the option reached HyPhy
    print(f"FUBAR HyPhy run: {run.seconds:.1f} s")


async def test_contrast_fel_compares_a_labelled_set(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path, FEW_CODONS)
    newick = tree.read_text()
    for tip in A_CLADE:
        newick = newick.replace(f"{tip}:", f"{tip}{{Clade}}:")
    tree.write_text(newick)
    options = {"branch_sets": ["Clade"], "permutations": "No", "p_value": 0.2, "q_value": 0.5}
    run = await run_method("contrast-fel", fasta, tmp_path, tree, options)
    p, q = columns(run.data, "P-value (overall)", "Q-value (overall)")
    rows = run.data["MLE"]["content"]["0"]
    summary = run.summary.model_dump()
    assert summary["significant_sites"] == [i + 1 for i, r in enumerate(rows) if r[p] <= 0.2]
    assert summary["fdr_sites"] == [i + 1 for i, r in enumerate(rows) if r[q] <= 0.5]
    tested = {name for name in run.data["tested"]["0"].values()}
    assert summary["branch_sets"] == [s for s in tested if s != "background"]
    assert sorted(b for b, s in run.data["tested"]["0"].items() if s != "background") == sorted(
        A_CLADE
    )
    print(f"Contrast-FEL HyPhy run: {run.seconds:.1f} s")


async def test_multihit_reports_the_model_tests(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path, FEW_CODONS)
    run = await run_method("multi-hit", fasta, tmp_path, tree, {"rate_classes": 1})
    results = run.data["test results"]
    summary = run.summary.model_dump()
    by_name = {t["test"]: t for t in summary["tests"]}
    assert set(by_name) == set(results)
    for name, result in results.items():
        assert by_name[name]["p"] == pytest.approx(result["p-value"], abs=1e-4)
        assert by_name[name]["significant"] == (result["p-value"] <= 0.05)
    double = results["Double-hit vs single-hit"]
    assert f"LRT {double['LRT']:.2f}, p = {double['p-value']:.3g}" in summary["summary_text"]
    ratios = run.data["Evidence Ratios"]
    strong = sorted(
        {
            i + 1
            for values in ratios.values()
            for i, v in enumerate(values[0])
            if v > 0 and math.log(v) > 2
        }
    )
    assert summary["strong_sites"] == strong
    assert len(run.table.rows) == FEW_CODONS
    print(f"MULTI-HIT HyPhy run: {run.seconds:.1f} s")


async def test_bgm_reports_pairs_at_the_threshold(tmp_path: Path) -> None:
    fasta, tree = small(tmp_path)
    options = {"steps": 5000, "burn_in": 500, "samples": 100, "posterior": 0.3}
    run = await run_method("bgm", fasta, tmp_path, tree, options)
    assert run.data["settings"]["steps"] == 5000
    summary = run.summary.model_dump()
    assert "MLE" in run.data  # 60 codons give BGM.bf enough substituted sites for a network
    (both,) = columns(run.data, "P [Site 1 <–> Site 2]")
    rows = run.data["MLE"]["content"]
    expected = {(r[0], r[1]) for r in rows if r[both] >= 0.3}
    assert {(p["site_1"], p["site_2"]) for p in summary["pairs"]} == expected
    assert len(run.table.rows) == len(rows)
    print(f"BGM HyPhy run: {run.seconds:.1f} s")
