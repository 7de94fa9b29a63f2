"""BUSTED, aBSREL, RELAX, GARD, FADE and Slatkin-Maddison on real HyPhy (small inputs cut from
HyPhy's example data): headline numbers checked against this test's own reading of the JSON,
GARD's coordinates against HyPhy's own partition file, aBSREL's count against HyPhy's
`tested` block.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from datamonkey_chat.analyses.methods.gard import partition_charsets, partitioned_alignment
from datamonkey_chat.analyses.validation import alignment_records, validate_tree
from tests.integration.method_harness import (
    HYPHY_AVAILABLE,
    HYPHY_DATA,
    INTEGRASE,
    codon_subset,
    run_method,
)

pytestmark = [
    pytest.mark.hyphy,
    pytest.mark.skipif(not HYPHY_AVAILABLE, reason="HyPhy and its example data are not installed"),
]

P51 = HYPHY_DATA / "p51.aa"  # 8 protein sequences (NEXUS) with an unrooted tree


def integrase_tree() -> str:
    text = INTEGRASE.read_text()
    match = re.search(r"Tree\s+\S+\s*=\s*(\(.*;)", text)
    assert match
    return match.group(1)


async def test_absrel_on_internal_branches_counts_what_hyphy_tested(tmp_path: Path) -> None:
    fasta = codon_subset(INTEGRASE, 40, tmp_path / "integrase40.fas")
    tree = tmp_path / "tree.nwk"
    tree.write_text(integrase_tree())
    run = await run_method(
        "absrel", fasta, tmp_path, tree=tree, options={"branches": ["Internal"], "srv": "No"}
    )
    tested = [b for b, kind in run.data["tested"]["0"].items() if kind == "test"]
    attributes = run.data["branch attributes"]["0"]
    assert len(tested) < len(attributes)  # leaves were not tested
    selected = [b for b in tested if attributes[b]["Corrected P-value"] <= 0.05]
    summary = run.summary.model_dump()
    assert summary["tested_count"] == len(tested) == run.data["test results"]["tested"]
    assert summary["selected_count"] == len(selected)
    assert f"of {len(tested)} tested branches" in summary["summary_text"]
    assert sorted(v["branch"] for v in run.plots[0]["data"]["values"]) == sorted(tested)
    assert len(run.table.rows) == len(attributes)


async def test_busted_gene_wide_test(tmp_path: Path) -> None:
    fasta = codon_subset(INTEGRASE, 40, tmp_path / "integrase40.fas")
    run = await run_method(
        "busted", fasta, tmp_path, options={"srv": "No", "rates": 2, "grid_size": 50}
    )
    p = run.data["test results"]["p-value"]
    classes = run.data["fits"]["Unconstrained model"]["Rate Distributions"]["Test"]
    summary = run.summary.model_dump()
    assert summary["p_value"] == pytest.approx(p, abs=1e-6)
    assert summary["selected"] is (p <= 0.05)
    shown = [c for c in summary["omega_classes"] if c["branches"] == "Test"]
    assert [c["proportion"] for c in shown] == [
        pytest.approx(classes[k]["proportion"], abs=1e-4) for k in sorted(classes, key=int)
    ]
    ratios = run.data.get("Evidence Ratios", {}).get("constrained")
    assert len(summary["sites"]) == (len(ratios[0]) if ratios else 0)
    assert run.plots[0]["data"]["values"] == summary["omega_classes"]


async def test_relax_test_versus_unlabelled_reference(tmp_path: Path) -> None:
    fasta = codon_subset(INTEGRASE, 40, tmp_path / "integrase40.fas")
    tree = tmp_path / "labelled.nwk"
    tree.write_text(re.sub(r"(D_UG_99_\w+)(:)", r"\1{Test}\2", integrase_tree()))
    run = await run_method(
        "relax",
        fasta,
        tmp_path,
        tree=tree,
        options={"test_branches": ["Test"], "models": "Minimal", "rates": 2, "grid_size": 50},
    )
    results = run.data["test results"]
    k, p = results["relaxation or intensification parameter"], results["p-value"]
    summary = run.summary.model_dump()
    assert run.inputs is not None
    assert summary["k"] == pytest.approx(k, abs=1e-4)
    assert summary["p_value"] == pytest.approx(p, abs=1e-6)
    if p > 0.05:
        assert "no evidence" in summary["summary_text"]
    else:
        assert ("relaxation" if k < 1 else "intensification") in summary["summary_text"]
    assert {c["branches"] for c in summary["omega_classes"]} == {"Test", "Reference"}


def recombinant(target: Path) -> Path:
    """Five integrase sequences, two of which swap their second halves (after nucleotide 120)
    across clades: a recombinant GARD finds quickly."""
    records = dict(alignment_records(INTEGRASE.read_text()))
    names = ["A1_KE_99_KNH1088", "A1_KE_99_KSM4021", "B_BO_99_BOL0122"]
    names += ["D_UG_99_99UGB25647", "D_UG_99_99UGD23550"]
    donor = dict(zip(names, names, strict=True))
    donor["A1_KE_99_KNH1088"], donor["D_UG_99_99UGB25647"] = names[3], names[0]
    target.write_text(
        "".join(f">{n}\n{records[n][:120]}{records[donor[n]][120:240]}\n" for n in names)
    )
    return target


async def test_gard_coordinates_match_hyphys_partition_file(tmp_path: Path) -> None:
    fasta = recombinant(tmp_path / "recombinant.fas")
    run = await run_method(
        "gard", fasta, tmp_path, options={"run_mode": "Faster", "max_breakpoints": 1}
    )
    written = sorted(run.workdir.rglob("*.best-gard"))
    assert written, list(run.workdir.rglob("*"))
    charsets = partition_charsets(written[0].read_text())
    summary = run.summary.model_dump()
    assert [(s["start"], s["end"]) for s in summary["segments"]] == charsets
    assert summary["breakpoint_count"] == len(charsets) - 1
    for point, (_, end) in zip(summary["breakpoints"], charsets, strict=False):
        assert point["after"] == end
        assert point["between_codons"] is (end % 3 == 0)
        support = run.data["siteBreakPointSupport"][str(end - 1)]
        assert point["support"] == pytest.approx(support, abs=1e-4)
    gain = run.data["singleTreeAICc"] - run.data["bestModelAICc"]
    assert summary["caic_improvement_single_tree"] == pytest.approx(gain, abs=0.01)
    assert partition_charsets(partitioned_alignment(written[0].read_text())) == charsets


async def test_fade_on_a_rooted_protein_tree(tmp_path: Path) -> None:
    records = alignment_records(P51.read_text())
    fasta = tmp_path / "p51_40.fas"
    fasta.write_text("".join(f">{n}\n{s[:40]}\n" for n, s in records))
    tree = tmp_path / "rooted.nwk"
    tree.write_text(
        "((((D_CD_83_ELI,D_CD_83_NDK),D_UG_94_94UG114),D_CD_84_84ZR085),"
        "(B_US_83_RF,((B_FR_83_HXB2,B_US_86_JRFL),B_US_90_WEAU160)));"
    )
    run = await run_method(
        "fade",
        fasta,
        tmp_path,
        tree=tree,
        options={"grid": 5, "model": "JTT", "bayes_factor_threshold": 5},
    )
    headers = [h[0] for h in run.data["MLE"]["headers"]]
    bf = headers.index("BayesFactor[bias>0]")
    content = run.data["MLE"]["content"]
    expected = sorted(
        (site + 1, residue)
        for residue, parts in content.items()
        for site, row in enumerate(parts["0"])
        if row[bf] >= 5
    )
    summary = run.summary.model_dump()
    assert [(p["site"], p["residue"]) for p in summary["selected"]] == expected
    assert summary["residues_tested"] == len(content) == 20
    assert len(run.plots[0]["data"]["values"]) == 20 * 40


async def test_slatkin_maddison_with_compartments_on_user_names(tmp_path: Path) -> None:
    run = await run_method(
        "slatkin-maddison",
        INTEGRASE,
        tmp_path,
        options={
            "compartment_definitions": [
                {"regexp": "^D_", "description": "Subtype D"},
                {"regexp": "^(A1|B)_", "description": "Subtypes A1 and B"},
            ],
            "replicates": 100,
        },
    )
    raw = run.raw["partitions"]
    assert all(name.startswith("SEQ") for group in raw.values() for name in group.values())
    counts = run.data["partition-counts"]
    assert counts == {"Subtype D": 6, "Subtypes A1 and B": 5}
    summary = run.summary.model_dump()
    assert summary["migrations"] == run.data["migrations"]
    assert summary["p_panmictic"] == pytest.approx(run.data["p-value"]["panmictic"], abs=1e-6)
    assert summary["compartments"] == counts
    assert sum(b["count"] for b in summary["null_distribution"]) == 100


async def test_gard_segments_become_datasets_the_user_owns(tmp_path: Path) -> None:
    """Through the REST API: the finished GARD job saves one FASTA per segment as the user's
    datasets (its notes name them), cut at the columns of HyPhy's own segments."""
    import asyncio

    from datamonkey_chat.api.app import create_app
    from datamonkey_chat.settings import Settings
    from tests.conftest import open_client

    fasta = recombinant(tmp_path / "recombinant.fas")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        job_poll_seconds=0.2,
    )
    async for client in open_client(create_app(settings)):
        files = {"file": (fasta.name, fasta.read_bytes(), "text/plain")}
        uploaded = await client.post("/datasets", files=files)
        headers = {"user_token": uploaded.headers["X-Session-Token"]}
        body = {
            "alignment": uploaded.json()["datasets"][0]["id"],
            "run_mode": "Faster",
            "max_breakpoints": 1,
        }
        started = await client.post("/methods/gard-start", headers=headers, json=body)
        assert started.status_code == 200, started.text
        job_id = started.json()["job_id"]
        for _ in range(1500):
            job = (await client.get(f"/jobs/{job_id}", headers=headers)).json()
            if job["status"] in ("completed", "error") and job["notes"]:
                break
            await asyncio.sleep(0.2)
        assert job["status"] == "completed", job
        segments = [(s["start"], s["end"]) for s in job["summary"]["segments"]]
        listed = (await client.get("/datasets", headers=headers)).json()["datasets"]
        saved = [d for d in listed if d["id"] in " ".join(job["notes"])]
        assert len(segments) == 2  # the recombinant's halves
        assert len(saved) == len(segments)
        originals = dict(alignment_records(fasta.read_text()))
        widths = []
        for dataset in saved:
            got = await client.get(
                f"/datasets/{dataset['id']}", headers=headers, params={"include_content": "true"}
            )
            records = dict(alignment_records(got.json()["content"]))
            assert set(records) == set(originals)  # the user's names, not HyPhy's ids
            widths.append(len(next(iter(records.values()))))
        assert sorted(widths) == sorted(end - start + 1 for start, end in segments)


def tree_only_options(names: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Three compartments by subtype prefix, and how many tips each should get (read here)."""
    prefixes = {"Subtype A1": "^A1_", "Subtype B": "^B_", "Subtype D": "^D_"}
    counts = {
        label: sum(1 for n in names if re.match(prefix, n)) for label, prefix in prefixes.items()
    }
    definitions = [{"regexp": p, "description": label} for label, p in prefixes.items()]
    options = {"groups": 3, "compartment_definitions": definitions, "replicates": 100}
    return options, counts


async def test_slatkin_maddison_on_a_tree_alone(tmp_path: Path) -> None:
    """Upstream's SlatkinRequest has only `tree` (SM-2019.bf reads only `--tree`): HyPhy gets
    the Newick alone, its tips as safe ids, and the compartments come out by the user's names."""
    tree = tmp_path / "integrase.nwk"
    tree.write_text(integrase_tree())
    options, counts = tree_only_options(validate_tree(integrase_tree()).tree_tips)
    assert all(counts.values()) and sum(counts.values()) == 11
    run = await run_method("slatkin-maddison", None, tmp_path, tree=tree, options=options)
    assert run.inputs.alignment_text is None
    command = (run.workdir / "command.txt").read_text()
    assert "--alignment" not in command and "--tree" in command
    assert not any(path.suffix == ".fas" for path in run.workdir.iterdir())
    raw = run.raw["partitions"]
    assert all(name.startswith("SEQ") for group in raw.values() for name in group.values())
    assert run.data["partition-counts"] == counts
    summary = run.summary.model_dump()
    assert summary["migrations"] == run.data["migrations"]
    assert summary["p_panmictic"] == pytest.approx(run.data["p-value"]["panmictic"], abs=1e-6)
    assert summary["compartments"] == counts
    assert sum(b["count"] for b in summary["null_distribution"]) == 100


def test_slatkin_maddison_on_a_tree_alone_over_http(tmp_path: Path, database_url: str) -> None:
    """The same through a server process (SQLite and PostgreSQL: a job without alignment is
    stored): upload the tree, POST /methods/slatkin-start with only `tree`, and the finished
    job's summary agrees with HyPhy's JSON it serves."""
    import httpx

    from tests.integration.http_jobs import upload, wait_for
    from tests.live_server import ENV_PREFIX, run_server

    tree = tmp_path / "integrase.nwk"
    tree.write_text(integrase_tree())
    options, counts = tree_only_options(validate_tree(integrase_tree()).tree_tips)
    data_dir = tmp_path / "server"
    with run_server(data_dir, env={ENV_PREFIX + "DATABASE_URL": database_url}) as server:
        api = server.api_url
        created = httpx.post(f"{api}/chat", timeout=30)
        headers = {"user_token": created.headers["X-Session-Token"]}
        tree_id = upload(api, headers, tree)
        body = {"tree": tree_id, **options}
        started = httpx.post(f"{api}/methods/slatkin-start", json=body, headers=headers, timeout=60)
        assert started.status_code == 200, started.text
        job = started.json()
        assert job["alignment_id"] is None and job["tree_id"] == tree_id
        finished = wait_for(api, headers, job["job_id"])
        assert finished["status"] == "completed", finished
        result = httpx.get(
            f"{api}/methods/slatkin-result",
            params={"job_id": job["job_id"]},
            headers=headers,
            timeout=60,
        ).json()
        found = httpx.post(f"{api}/methods/slatkin-result", json=body, headers=headers, timeout=60)
        listed = httpx.get(
            f"{api}/jobs", params={"tree_id": tree_id}, headers=headers, timeout=60
        ).json()
        plots = httpx.get(
            f"{api}/visualizations", params={"job_id": job["job_id"]}, headers=headers, timeout=60
        ).json()
    hyphy = result["result"]  # HyPhy's JSON, the user's names restored
    assert finished["summary"]["migrations"] == hyphy["migrations"]
    assert finished["summary"]["compartments"] == hyphy["partition-counts"] == counts
    assert finished["alignment_id"] is None
    assert found.status_code == 200 and found.json()["job_id"] == job["job_id"]
    assert [j["job_id"] for j in listed["jobs"]] == [job["job_id"]]
    assert plots["visualizations"] and all(
        v["dataset_id"] == tree_id for v in plots["visualizations"]
    )
