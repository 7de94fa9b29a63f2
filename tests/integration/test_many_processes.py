"""Several server processes on one PostgreSQL database, run as real processes: started
together (one migrates, the others wait), sends to one conversation from all of them taken
in turn, and a process killed mid-job that takes its HyPhy with it while another process
runs the job again. Plus `serve --workers N`, refused on SQLite."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from datamonkey_chat.analyses.hyphy import find_hyphy_binary
from datamonkey_chat.analyses.runner import RESTARTED_NOTE
from tests.conftest import POSTGRES_URL, _reset_postgres, postgres_connection
from tests.integration.http_jobs import INTEGRASE, new_session, processes_in, start, until, wait_for
from tests.live_server import ENV_PREFIX, run_server, run_servers, serve_command, server_env

SENDS = 30


@pytest.fixture
def empty_postgres() -> str:
    try:
        _reset_postgres(POSTGRES_URL)
    except OSError as exc:  # CI always has PostgreSQL; a laptop may not
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    return POSTGRES_URL


def shared_env(database_url: str, **settings: str) -> dict[str, str]:
    """One database and one signing secret: a token from one process works on all."""
    env = {
        ENV_PREFIX + "DATABASE_URL": database_url,
        ENV_PREFIX + "JWT_SECRET": secrets.token_urlsafe(48),
    }
    env.update({ENV_PREFIX + key.upper(): value for key, value in settings.items()})
    return env


async def send_all(apis: list[str], headers: dict[str, str], chat: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(
            *(
                client.post(
                    f"{apis[i % len(apis)]}/chat/{chat}/messages",
                    json={"message": f"what is FEL? (message {i})"},
                    headers=headers,
                )
                for i in range(SENDS)
            )
        )


def test_three_processes_start_together_and_take_turns_on_one_conversation(
    tmp_path: Path, empty_postgres: str
) -> None:
    env = shared_env(empty_postgres)
    with run_servers([tmp_path / f"server{i}" for i in range(3)], env=env) as servers:
        # all three migrated the empty database at once: none crashed, all answer
        apis = [server.api_url for server in servers]
        created = httpx.post(f"{apis[0]}/chat", timeout=30)
        assert created.status_code == 201
        headers = {"user_token": created.headers["X-Session-Token"]}
        chat = created.json()["id"]
        responses = asyncio.run(send_all(apis, headers, chat))
        stored = httpx.get(f"{apis[1]}/chat/{chat}/messages", headers=headers, timeout=30)
        logs = [server.log() for server in servers]

    assert [r.status_code for r in responses] == [200] * SENDS, [r.text for r in responses]
    messages = stored.json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"] * SENDS  # whole turns
    questions = [m["content"] for m in messages[::2]]
    assert sorted(questions) == sorted(f"what is FEL? (message {i})" for i in range(SENDS))
    replies = {r.json()["message"]["timestamp"] for r in responses}
    assert {m["timestamp"] for m in messages[1::2]} == replies  # each reply stored as answered
    for log in logs:
        assert "Traceback" not in log, log


def test_workers_serve_on_postgresql_and_are_refused_on_sqlite(
    tmp_path: Path, empty_postgres: str
) -> None:
    refused = subprocess.run(
        serve_command(8, ["--workers", "2"]),
        cwd=tmp_path,
        env=server_env(tmp_path / "sqlite"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "several processes need PostgreSQL" in refused.stderr

    data_dir = tmp_path / "workers"
    env = {ENV_PREFIX + "DATABASE_URL": empty_postgres}  # the secret: made once, in data_dir
    with run_server(data_dir, env=env, extra_args=["--workers", "2"]) as server:
        created = httpx.post(f"{server.api_url}/chat", timeout=30)
        assert created.status_code == 201
        headers = {"user_token": created.headers["X-Session-Token"]}
        for _ in range(6):  # requests land on both workers; every one knows the session
            listed = httpx.get(f"{server.api_url}/chat", headers=headers, timeout=30)
            assert listed.status_code == 200
        log = server.log()
    assert log.count("Started server process") == 2, log
    assert (data_dir / "jwt_secret").exists()


async def stored_jobs(database_url: str) -> dict[str, dict[str, Any]]:
    async with postgres_connection(database_url) as connection:
        rows = await connection.fetch("SELECT id, status, attempts, notes FROM jobs")
    return {row["id"]: dict(row) for row in rows}


@pytest.mark.hyphy
@pytest.mark.skipif(
    find_hyphy_binary() is None or not INTEGRASE.exists(),
    reason="HyPhy (apt-get install hyphy-pt) and its example data are not installed",
)
def test_a_process_killed_mid_job_leaves_no_hyphy_and_every_job_completes_once(
    tmp_path: Path, empty_postgres: str
) -> None:
    env = shared_env(
        empty_postgres, job_heartbeat_seconds="0.5", job_poll_seconds="0.2", max_concurrent_jobs="2"
    )
    data_dirs = [tmp_path / "server0", tmp_path / "server1"]
    with run_servers(data_dirs, env=env) as servers:
        headers, alignment = new_session(servers[0].api_url)
        job_ids = [start(servers[0].api_url, headers, "fubar", alignment) for _ in range(2)]

        def running_hyphy() -> dict[int, list[int]]:
            """server index -> pids of HyPhy runs in its job directories"""
            found: dict[int, list[int]] = {}
            for index, data_dir in enumerate(data_dirs):
                for job_id in job_ids:
                    pids = processes_in((data_dir / "jobs" / job_id).resolve())
                    if pids:
                        found.setdefault(index, []).extend(pids)
            return found

        victim = min(until(running_hyphy, 120, "HyPhy to start"))
        victim_dir = data_dirs[victim]
        servers[victim].process.kill()  # kill -9 mid-job
        servers[victim].process.wait(timeout=10)
        # its HyPhy died with it (no orphan running on past the server)
        until(lambda: not running_hyphy().get(victim), 15, "the killed server's HyPhy to die")

        survivor = servers[1 - victim]
        finished = [wait_for(survivor.api_url, headers, job_id) for job_id in job_ids]
        assert not any(running_hyphy().values())  # nothing left behind

    assert [job["status"] for job in finished] == ["completed", "completed"], finished
    assert all(job["summary"]["tested_sites"] == 288 for job in finished)
    stored = asyncio.run(stored_jobs(empty_postgres))
    interrupted = [
        job_id for job_id in job_ids if (victim_dir / "jobs" / job_id).exists()
    ]  # the victim's directories are left for diagnosis
    assert interrupted, "the killed server ran none of the jobs"
    for job_id in job_ids:
        notes = json.loads(stored[job_id]["notes"] or "[]")
        if job_id in interrupted:
            assert (stored[job_id]["attempts"], notes) == (2, [RESTARTED_NOTE])
        else:  # never claimed by the killed server, or claimed and lost while its inputs
            # were being prepared (before any HyPhy of it ran): then run once more, saying so
            assert (stored[job_id]["attempts"], notes) in ((1, []), (2, [RESTARTED_NOTE]))
