"""FEL on real HyPhy: headline numbers checked against this test's own reading of the JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.method_harness import HYPHY_AVAILABLE, INTEGRASE, run_method

pytestmark = [
    pytest.mark.hyphy,
    pytest.mark.skipif(not HYPHY_AVAILABLE, reason="HyPhy and its example data are not installed"),
]


async def test_fel_counts_sites_as_hyphy_reports_them(tmp_path: Path) -> None:
    run = await run_method("fel", INTEGRASE, tmp_path, options={"pvalue": 0.1, "srv": "No"})
    headers = [h[0] for h in run.data["MLE"]["headers"]]
    a, b, p = headers.index("alpha"), headers.index("beta"), headers.index("p-value")
    rows = run.data["MLE"]["content"]["0"]
    positive = [i + 1 for i, r in enumerate(rows) if r[p] <= 0.1 and r[b] > r[a]]
    negative = [i + 1 for i, r in enumerate(rows) if r[p] <= 0.1 and r[b] < r[a]]
    summary = run.summary.model_dump()
    assert summary["positive_sites"] == positive
    assert summary["negative_sites"] == negative
    assert summary["tested_sites"] == len(rows) == 288
    assert f"{len(negative)} sites under negative" in summary["summary_text"]
    assert len(run.table.rows) == len(rows) and run.table.columns[2:] == headers
    assert len(run.plots[0]["data"]["values"]) == 288  # no cut
    # the user's names are back: HyPhy saw only safe ids
    assert "SEQ00001" not in str(run.data["input"]) and "SEQ00001" in str(run.raw["input"])


async def test_fel_through_rest_with_a_built_tree_and_downloads(tmp_path: Path) -> None:
    """A FASTA without a tree: the job builds a neighbour-joining tree and says so; the table
    and the JSON download carry the user's names and only its owner may fetch them."""
    import asyncio
    import csv
    import io

    from datamonkey_chat.api.app import create_app
    from datamonkey_chat.settings import Settings
    from tests.conftest import open_client
    from tests.integration.method_harness import codon_subset

    fasta = codon_subset(INTEGRASE, 60, tmp_path / "integrase 60 codons.fas")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        job_poll_seconds=0.2,
    )
    async for client in open_client(create_app(settings)):
        files = {"file": (fasta.name, fasta.read_bytes(), "text/plain")}
        uploaded = await client.post("/datasets", files=files)
        assert uploaded.status_code == 201, uploaded.text
        headers = {"user_token": uploaded.headers["X-Session-Token"]}
        started = await client.post(
            "/methods/fel-start",
            headers=headers,
            json={
                "alignment": uploaded.json()["datasets"][0]["id"],
                "genetic_code": "Universal",
                "branches": [],
            },
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["job_id"]
        for _ in range(900):
            job = (await client.get(f"/jobs/{job_id}", headers=headers)).json()
            if job["status"] in ("completed", "error"):
                break
            await asyncio.sleep(0.2)
        assert job["status"] == "completed", job
        assert any("neighbour-joining" in note for note in job["notes"])
        result = (await client.get(f"/jobs/{job_id}/result.json", headers=headers)).json()
        names = [line[1:] for line in fasta.read_text().splitlines() if line.startswith(">")]
        tree = result["input"]["trees"]["0"]
        assert all(name in tree for name in names) and "SEQ0" not in tree
        rows = result["MLE"]["content"]["0"]
        csv_text = (await client.get(f"/jobs/{job_id}/table.csv", headers=headers)).text
        table = list(csv.reader(io.StringIO(csv_text)))
        assert len(table) == 1 + len(rows) == 61
        p_column = table[0].index("p-value")
        assert [float(r[p_column]) for r in table[1:]] == [row[p_column - 2] for row in rows]
        assert job["summary"]["plots"] and job["summary"]["plots"][0]["data"]["values"]
        stranger = (await client.post("/chat")).headers["X-Session-Token"]
        for path in (f"/jobs/{job_id}/table.csv", f"/jobs/{job_id}/result.json"):
            refused = await client.get(path, headers={"user_token": stranger})
            assert refused.status_code == 403
