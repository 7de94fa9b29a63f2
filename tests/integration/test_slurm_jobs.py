"""HyPhy jobs on a real (single-node, throwaway) Slurm cluster, through servers run as
processes: the same FUBAR summary as a local run, and a server killed mid-job whose Slurm
job the next server follows instead of submitting it again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from datamonkey_chat.analyses.hyphy import find_hyphy_binary
from datamonkey_chat.analyses.slurm import JOB_NAME_PREFIX
from tests.integration.http_jobs import (
    INTEGRASE,
    job,
    new_session,
    processes_in,
    start,
    until,
    wait_for,
)
from tests.live_server import ENV_PREFIX, run_server
from tests.slurm_cluster import SlurmCluster, slurm_cluster  # noqa: F401  (a fixture)

pytestmark = [
    pytest.mark.hyphy,
    pytest.mark.skipif(
        find_hyphy_binary() is None or not INTEGRASE.exists(),
        reason="HyPhy (apt-get install hyphy-pt) and its example data are not installed",
    ),
]


def slurm_env(cluster: SlurmCluster) -> dict[str, str]:
    return {
        **cluster.env,
        ENV_PREFIX + "JOB_EXECUTOR": "slurm",
        ENV_PREFIX + "SLURM_POLL_SECONDS": "0.5",
        ENV_PREFIX + "JOB_POLL_SECONDS": "0.2",
        ENV_PREFIX + "JOB_HEARTBEAT_SECONDS": "0.5",  # a dead server's jobs are stale in 3 s
    }


def rounded(value: Any) -> Any:
    """HyPhy's floats differ in their last digits from run to run."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def stored_job(data_dir: Path, job_id: str) -> tuple[int, str | None]:
    """(attempts, slurm_job_id) straight from the server's SQLite database."""
    with sqlite3.connect(data_dir / "datamonkey-chat.sqlite3") as connection:
        row = connection.execute(
            "SELECT attempts, slurm_job_id FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    return int(row[0]), row[1]


def test_fubar_on_slurm_has_the_same_summary_as_a_local_run(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,  # noqa: F811
) -> None:
    with (
        run_server(tmp_path / "slurm", env=slurm_env(slurm_cluster)) as on_slurm,
        run_server(tmp_path / "local") as local,
    ):
        started = {}
        for server in (on_slurm, local):  # both at once: two cores
            headers, alignment = new_session(server.api_url)
            started[server.api_url] = (headers, start(server.api_url, headers, "fubar", alignment))
        headers, job_id = started[on_slurm.api_url]
        name = JOB_NAME_PREFIX + job_id
        until(lambda: slurm_cluster.state_of(name), 60, "the job to reach Slurm")
        finished = {
            api: wait_for(api, headers, job_id) for api, (headers, job_id) in started.items()
        }
        on_slurm_job, local_job = finished[on_slurm.api_url], finished[local.api_url]

    assert on_slurm_job["status"] == "completed", on_slurm_job
    assert local_job["status"] == "completed", local_job
    assert rounded(on_slurm_job["summary"]) == rounded(local_job["summary"])
    assert on_slurm_job["summary"]["tested_sites"] == 288
    records = slurm_cluster.finished_jobs(name)
    assert len(records) == 1 and "JobState=COMPLETED" in records[0], records
    attempts, slurm_id = stored_job(on_slurm.data_dir, job_id)
    assert attempts == 1 and slurm_id is not None and f"JobId={slurm_id} " in records[0]


def test_a_server_killed_mid_job_is_followed_by_the_next_not_run_again(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,  # noqa: F811
) -> None:
    data_dir = tmp_path / "server"
    env = slurm_env(slurm_cluster)
    with run_server(data_dir, env=env) as first:
        headers, alignment = new_session(first.api_url)
        job_id = start(first.api_url, headers, "fubar", alignment)
        name = JOB_NAME_PREFIX + job_id
        until(lambda: slurm_cluster.state_of(name) == "RUNNING", 120, "Slurm to run the job")
        workdir = (data_dir / "jobs" / job_id).resolve()
        until(lambda: processes_in(workdir), 60, "HyPhy to start in the job directory")
        first.process.kill()  # kill -9: no shutdown, no release of the job
        first.process.wait(timeout=10)
    # the run goes on without the server that submitted it
    assert slurm_cluster.state_of(name) in ("RUNNING", "COMPLETING", "COMPLETED")
    _attempts, slurm_id = stored_job(data_dir, job_id)

    with run_server(data_dir, env=env) as second:
        finished = wait_for(second.api_url, headers, job_id)
        log = second.log()

    assert finished["status"] == "completed", finished
    assert finished["summary"]["tested_sites"] == 288
    assert f"job {job_id} was left running by a dead runner: adopted" in log
    records = slurm_cluster.finished_jobs(name)  # one Slurm job: it ran once
    assert len(records) == 1 and "JobState=COMPLETED" in records[0], records
    assert stored_job(data_dir, job_id) == (1, slurm_id)  # no second attempt


def test_sbatch_arguments_pass_through_and_cancel_is_scancel(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,  # noqa: F811
) -> None:
    env = {
        **slurm_env(slurm_cluster),
        # held in the queue for a minute: cancelled before it ever starts
        ENV_PREFIX + "SLURM_EXTRA_ARGS": "--begin=now+60 --comment='datamonkey chat test'",
    }
    with run_server(tmp_path / "server", env=env) as server:
        headers, alignment = new_session(server.api_url)
        job_id = start(server.api_url, headers, "fubar", alignment)
        name = JOB_NAME_PREFIX + job_id
        until(lambda: slurm_cluster.state_of(name) == "PENDING", 60, "the job to wait in Slurm")
        shown = slurm_cluster.command(
            "scontrol", "show", "job", "-o", stored_job_id(server, job_id)
        )
        assert "Comment=datamonkey chat test" in shown and f"JobName={name} " in shown
        until(
            lambda: str(job(server.api_url, headers, job_id)["stage"]).startswith(
                "Waiting in the Slurm queue"
            ),
            30,
            "the job's stage to say it waits in Slurm",
        )
        deleted = httpx.delete(f"{server.api_url}/jobs/{job_id}", headers=headers, timeout=30)
        assert deleted.status_code == 204  # cancelled, then deleted
        until(lambda: slurm_cluster.state_of(name) == "CANCELLED", 30, "scancel")
        gone = httpx.get(f"{server.api_url}/jobs/{job_id}", headers=headers, timeout=30)
        assert gone.status_code == 404


def test_deleting_a_slurm_job_that_no_server_follows_scancels_it(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,  # noqa: F811
) -> None:
    data_dir = tmp_path / "server"
    env = {
        **slurm_env(slurm_cluster),
        ENV_PREFIX + "SLURM_EXTRA_ARGS": "--begin=now+120",  # held: it never starts here
        # its dead runner looks alive for 2 minutes: the next server does not adopt it yet
        ENV_PREFIX + "JOB_HEARTBEAT_SECONDS": "20",
    }
    with run_server(data_dir, env=env) as first:
        headers, alignment = new_session(first.api_url)
        job_id = start(first.api_url, headers, "fubar", alignment)
        name = JOB_NAME_PREFIX + job_id
        until(lambda: slurm_cluster.state_of(name) == "PENDING", 60, "the job to wait in Slurm")
        first.process.kill()  # kill -9: nobody follows the Slurm job now
        first.process.wait(timeout=10)

    with run_server(data_dir, env=env) as second:
        deleted = httpx.delete(f"{second.api_url}/jobs/{job_id}", headers=headers, timeout=30)
        assert deleted.status_code == 204
        until(lambda: slurm_cluster.state_of(name) == "CANCELLED", 30, "scancel")
        assert "adopted" not in second.log()  # cancelled by its Slurm id, never followed


def test_a_job_slurm_refuses_ends_with_slurms_reason(
    tmp_path: Path,
    slurm_cluster: SlurmCluster,  # noqa: F811
) -> None:
    env = {**slurm_env(slurm_cluster), ENV_PREFIX + "SLURM_PARTITION": "nosuchpartition"}
    with run_server(tmp_path / "server", env=env) as server:
        headers, alignment = new_session(server.api_url)
        job_id = start(server.api_url, headers, "fubar", alignment)
        failed = wait_for(server.api_url, headers, job_id, timeout=60)
    assert failed["status"] == "error"
    assert failed["error_message"].startswith("Slurm did not accept the job:"), failed
    assert "nosuchpartition" in failed["error_message"]


def stored_job_id(server: Any, job_id: str) -> str:
    slurm_id = until(lambda: stored_job(server.data_dir, job_id)[1], 30, "the Slurm id stored")
    return str(slurm_id)
