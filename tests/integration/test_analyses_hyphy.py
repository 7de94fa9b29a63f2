"""Real HyPhy analyses end to end: REST API, chat with the offline assistant, cancellation,
restart recovery. SQLite only (the database matrix is covered by tests/api); HyPhy runs a
handful of times on /usr/share/hyphy/data (about a minute on 2 cores).

Summaries are checked against the HyPhy JSON the API returns, recomputed here directly
from MLE.headers / MLE.content and 'branch attributes'.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from datamonkey_chat.analyses.hyphy import find_hyphy_binary
from datamonkey_chat.analyses.runner import RESTART_MESSAGE
from datamonkey_chat.api.app import create_app
from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.settings import Settings
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import JobRow
from tests.conftest import open_client

HYPHY_DATA = Path("/usr/share/hyphy/data")
INTEGRASE = HYPHY_DATA / "integrase_BDA.nex"  # 11 sequences x 288 codons, with a tree
PROTEIN = HYPHY_DATA / "p51.aa"
JOB_TIMEOUT_SECONDS = 180.0

pytestmark = [
    pytest.mark.hyphy,
    pytest.mark.skipif(
        find_hyphy_binary() is None or not INTEGRASE.exists(),
        reason="HyPhy (apt-get install hyphy-pt) and its example data are not installed",
    ),
]


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'analyses.sqlite3'}",
            "max_concurrent_jobs": 3,
            "job_poll_seconds": 0.2,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(create_app(settings)):
        yield client


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(make_settings()) as client:
        yield client


async def upload(client: httpx.AsyncClient, path: Path, token: str | None = None) -> httpx.Response:
    headers = {"user_token": token} if token else {}
    files = {"file": (path.name, path.read_bytes(), "text/plain")}
    response = await client.post("/datasets", headers=headers, files=files)
    assert response.status_code == 201, response.text
    return response


async def session_with_integrase(client: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    response = await upload(client, INTEGRASE)
    return {"user_token": response.headers["X-Session-Token"]}, response.json()["datasets"][0]["id"]


async def start(
    client: httpx.AsyncClient, headers: dict[str, str], method: str, **body: Any
) -> str:
    response = await client.post(f"/methods/{method}-start", headers=headers, json=body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "queued"
    job_id: str = response.json()["job_id"]
    return job_id


async def wait_for(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "error"),
) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await client.get(f"/jobs/{job_id}", headers=headers)).json()
        assert 0.0 <= job["progress"] <= 1.0
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.3)
    raise AssertionError(f"job {job_id} did not reach {statuses}: {job}")


# ---------------------------------------------------------------- reading HyPhy's JSON here


def site_rows(result: dict[str, Any]) -> tuple[list[str], list[list[float]]]:
    headers = [h[0] for h in result["MLE"]["headers"]]
    return headers, result["MLE"]["content"]["0"]


def fel_counts(result: dict[str, Any], p: float = 0.1) -> tuple[int, int, int]:
    headers, rows = site_rows(result)
    a, b, pv = headers.index("alpha"), headers.index("beta"), headers.index("p-value")
    positive = sum(1 for r in rows if r[b] > r[a] and r[pv] <= p)
    negative = sum(1 for r in rows if r[b] < r[a] and r[pv] <= p)
    return positive, negative, len(rows)


def fubar_counts(result: dict[str, Any], posterior: float = 0.9) -> tuple[int, int, int]:
    headers, rows = site_rows(result)
    pos, neg = headers.index("Prob[alpha<beta]"), headers.index("Prob[alpha>beta]")
    positive = sum(1 for r in rows if r[pos] >= posterior)
    negative = sum(1 for r in rows if r[pos] < posterior and r[neg] >= posterior)
    return positive, negative, len(rows)


def absrel_branches(result: dict[str, Any], p: float = 0.05) -> tuple[list[str], int]:
    attributes = result["branch attributes"]["0"]
    tested = {n: a["Corrected P-value"] for n, a in attributes.items() if "Corrected P-value" in a}
    return sorted(n for n, cp in tested.items() if cp <= p), len(tested)


# ---------------------------------------------------------------- REST end to end


async def test_fel_fubar_absrel_through_the_rest_api(client: httpx.AsyncClient) -> None:
    headers, alignment = await session_with_integrase(client)
    jobs = {
        "fel": await start(client, headers, "fel", alignment=alignment),
        "fubar": await start(client, headers, "fubar", alignment=alignment),
        "absrel": await start(client, headers, "absrel", alignment=alignment),
    }
    finished = {m: await wait_for(client, headers, j) for m, j in jobs.items()}
    for job in finished.values():
        assert job["status"] == "completed", job
        assert job["progress"] == 1.0 and job["error_message"] is None

    results = {}
    for method, job_id in jobs.items():
        response = await client.get(
            f"/methods/{method}-result", headers=headers, params={"job_id": job_id}
        )
        assert response.status_code == 200
        results[method] = response.json()["result"]
        assert response.json()["summary"] == finished[method]["summary"]

    fel = finished["fel"]["summary"]
    assert (fel["positive_count"], fel["negative_count"], fel["tested_sites"]) == fel_counts(
        results["fel"]
    )
    assert fel["test"].endswith("p <= 0.1") and len(fel["sites"]) == 288
    headers_fel, rows = site_rows(results["fel"])
    first = fel["sites"][0]
    assert first["site"] == 1
    assert first["alpha"] == round(rows[0][headers_fel.index("alpha")], 4)
    assert first["p"] == round(rows[0][headers_fel.index("p-value")], 4)

    fubar = finished["fubar"]["summary"]
    assert (fubar["positive_count"], fubar["negative_count"], fubar["tested_sites"]) == (
        fubar_counts(results["fubar"])
    )
    assert fubar["posterior_threshold"] == 0.9
    assert {"site", "alpha", "beta", "prob_positive"} <= set(fubar["sites"][0])

    absrel = finished["absrel"]["summary"]
    selected, tested = absrel_branches(results["absrel"])
    assert (sorted(absrel["selected_branches"]), absrel["tested_count"]) == (selected, tested)
    assert {"branch", "corrected_p", "uncorrected_p"} <= set(absrel["branches"][0])
    assert f"{len(selected)} of {tested} tested branches" in absrel["summary_text"]

    listed = (await client.get("/jobs", headers=headers, params={"method": "FUBAR"})).json()
    assert [j["job_id"] for j in listed["jobs"]] == [jobs["fubar"]]
    by_alignment = await client.get(
        "/jobs", headers=headers, params={"alignment_id": alignment, "status": "completed"}
    )
    assert {j["job_id"] for j in by_alignment.json()["jobs"]} == set(jobs.values())
    gone = await client.delete(f"/jobs/{jobs['fel']}", headers=headers)
    assert gone.status_code == 204  # deleted with its files
    assert (await client.get(f"/jobs/{jobs['fel']}", headers=headers)).status_code == 404


async def test_protein_to_fel_is_rejected_precisely(client: httpx.AsyncClient) -> None:
    response = await upload(client, PROTEIN)
    headers = {"user_token": response.headers["X-Session-Token"]}
    started = await client.post(
        "/methods/fel-start",
        headers=headers,
        json={"alignment": response.json()["datasets"][0]["id"]},
    )
    assert started.status_code == 422
    assert started.json()["problems"][0]["code"] == "wrong_data_type"
    assert started.json()["details"] == (
        "FEL cannot run on dataset p51.aa, which has 1 problem: FEL needs a nucleotide "
        "alignment of codons, but this is a protein alignment"
    )


# ---------------------------------------------------------------- the chat


async def say(client: httpx.AsyncClient, headers: dict[str, str], chat: str, text: str) -> Any:
    response = await client.post(f"/chat/{chat}/messages", headers=headers, json={"message": text})
    assert response.status_code == 200, response.text
    return response.json()["message"]


async def test_fel_fubar_absrel_through_the_offline_assistant(client: httpx.AsyncClient) -> None:
    headers, alignment = await session_with_integrase(client)
    chat = (await client.post("/chat", headers=headers, json={})).json()["id"]

    job_ids: dict[str, str] = {}
    for method in ["FUBAR", "aBSREL", "FEL"]:
        started = await say(client, headers, chat, f"run {method} on my alignment")
        [result] = [
            e
            for e in started["tool_events"]
            if e["type"] == "tool_result" and e["tool_name"] == "start_analysis"
        ]
        job_ids[method] = result["payload"]["job_id"]
        assert result["payload"]["alignment_id"] == alignment
        assert f"Started {method} (job {job_ids[method]}" in started["content"]

    jobs = {m: await wait_for(client, headers, job_id) for m, job_id in job_ids.items()}
    assert all(job["status"] == "completed" for job in jobs.values()), jobs
    status = await say(client, headers, chat, "is my job done?")
    assert "completed" in status["content"]

    for method, job in jobs.items():
        answer = await say(client, headers, chat, f"what did {method} find?")
        # the answer is the server's summary of HyPhy's JSON, not a guess
        assert job["summary"]["summary_text"] in answer["content"], (method, answer)
        [results_event] = [
            e
            for e in answer["tool_events"]
            if e["type"] == "tool_result" and e["tool_name"] == "job_results"
        ]
        assert results_event["payload"]["job_id"] == job_ids[method]
        assert "sites" not in results_event["payload"]  # the model gets the small summary
        assert "branches" not in results_event["payload"]

    fubar = jobs["FUBAR"]["summary"]
    answer = await say(client, headers, chat, "what did FUBAR find?")
    assert f"FUBAR found {fubar['positive_count']} site" in answer["content"]
    assert f"and {fubar['negative_count']} site" in answer["content"]
    assert "among 288 codons" in answer["content"]

    # the same job, but protein data: a precise refusal, and nothing queued
    await upload(client, PROTEIN, headers["user_token"])
    refused = await say(client, headers, chat, "run FEL on my latest alignment")
    assert (
        "FEL needs a nucleotide alignment of codons, but this is a protein alignment"
        in (refused["content"])
    )
    assert len((await client.get("/jobs", headers=headers)).json()["jobs"]) == 3


async def test_pasted_alignment_is_stored(client: httpx.AsyncClient) -> None:
    headers, _ = await session_with_integrase(client)
    chat = (await client.post("/chat", headers=headers, json={})).json()["id"]
    pasted = ">a\nATGAAACCCGGG\n>b\nATGAAACCCGGA\n>c\nATGAAGCCCGGG\n"
    reply = await say(client, headers, chat, f"Here is my alignment:\n{pasted}")
    assert "I stored your alignment as dataset pasted alignment" in reply["content"]
    datasets = (await client.get("/datasets", headers=headers)).json()["datasets"]
    assert (datasets[0]["sequences"], datasets[0]["codons"]) == (3, 4)


# ---------------------------------------------------------------- cancellation, recovery


def processes_in(workdir: Path) -> list[int]:
    """Pids whose working directory is `workdir` (HyPhy runs in its job directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == workdir:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_cancel_a_running_job_kills_hyphy(
    client: httpx.AsyncClient, make_settings: Callable[..., Settings]
) -> None:
    headers, alignment = await session_with_integrase(client)
    job_id = await start(client, headers, "fel", alignment=alignment)
    await wait_for(client, headers, job_id, ("running",))
    workdir = (make_settings().data_dir / "jobs" / job_id).resolve()
    deadline = time.monotonic() + 10
    while not processes_in(workdir) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert processes_in(workdir), "HyPhy did not start"

    deleted = await client.delete(f"/jobs/{job_id}", headers=headers)
    assert deleted.status_code == 204
    deadline = time.monotonic() + 10
    while processes_in(workdir) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert processes_in(workdir) == []
    await asyncio.sleep(1.0)  # the runner has seen the process end: nothing comes back
    assert (await client.get(f"/jobs/{job_id}", headers=headers)).status_code == 404
    assert not workdir.exists()


async def test_restart_recovery(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    async with running_app(settings) as client:
        headers, alignment = await session_with_integrase(client)
        # a job running at a clean shutdown goes back to the queue
        interrupted = await start(client, headers, "fubar", alignment=alignment)
        await wait_for(client, headers, interrupted, ("running",))
    user_id, status, attempts = await job_state(settings, interrupted)
    assert (status, attempts) == ("queued", 0)  # shutdown is not the job's fault
    stale = now_ms() - 3_600_000  # a process that died an hour ago
    retried = await add_running_job(settings, user_id, alignment, attempts=1, heartbeat=stale)
    given_up = await add_running_job(settings, user_id, alignment, attempts=2, heartbeat=stale)

    async with running_app(settings) as client:
        for job_id in (interrupted, retried):
            job = await wait_for(client, headers, job_id)
            assert job["status"] == "completed", job
        failed = (await client.get(f"/jobs/{given_up}", headers=headers)).json()
        assert (failed["status"], failed["error_message"]) == ("error", RESTART_MESSAGE)


async def job_state(settings: Settings, job_id: str) -> tuple[str, str, int]:
    """(owner, status, attempts) read straight from the database."""
    database = Database(settings.resolved_database_url)
    try:
        async with database.session() as db:
            row = await db.get(JobRow, job_id)
            assert row is not None
            return row.user_id, row.status, row.attempts
    finally:
        await database.dispose()


async def add_running_job(
    settings: Settings, user_id: str, alignment: str, attempts: int, heartbeat: int
) -> str:
    """A job a crashed server left 'running' (its process is long gone)."""
    job_id = f"crashed{attempts}"
    database = Database(settings.resolved_database_url)
    try:
        async with database.transaction() as db:
            db.add(
                JobRow(
                    id=job_id,
                    user_id=user_id,
                    method="fubar",
                    alignment_id=alignment,
                    options=json.dumps({}),
                    status="running",
                    progress=0.4,
                    attempts=attempts,
                    runner_id="dead-runner",
                    heartbeat_ms=heartbeat,
                    created_ms=heartbeat,
                    started_ms=heartbeat,
                )
            )
    finally:
        await database.dispose()
    return job_id
