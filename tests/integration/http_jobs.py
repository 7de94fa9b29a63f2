"""Datasets and jobs over real HTTP, for tests that run servers as processes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

HYPHY_DATA = Path("/usr/share/hyphy/data")
INTEGRASE = HYPHY_DATA / "integrase_BDA.nex"  # 11 sequences x 288 codons, with a tree
JOB_TIMEOUT_SECONDS = 600.0  # HyPhy on a busy 2-core machine


def new_session(api: str, path: Path = INTEGRASE) -> tuple[dict[str, str], str]:
    """Upload an alignment without a token: (headers of the new session, dataset id)."""
    with path.open("rb") as handle:
        response = httpx.post(f"{api}/datasets", files={"file": (path.name, handle)}, timeout=60)
    assert response.status_code == 201, response.text
    return {"user_token": response.headers["X-Session-Token"]}, response.json()["datasets"][0]["id"]


def upload(api: str, headers: dict[str, str], path: Path = INTEGRASE) -> str:
    with path.open("rb") as handle:
        response = httpx.post(
            f"{api}/datasets", files={"file": (path.name, handle)}, headers=headers, timeout=60
        )
    assert response.status_code == 201, response.text
    dataset_id: str = response.json()["datasets"][0]["id"]
    return dataset_id


def start(api: str, headers: dict[str, str], method: str, alignment: str) -> str:
    response = httpx.post(
        f"{api}/methods/{method}-start", json={"alignment": alignment}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def job(api: str, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api}/jobs/{job_id}", headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(
    api: str,
    headers: dict[str, str],
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "error"),
    timeout: float = JOB_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = job(api, headers, job_id)
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"job {job_id} is still {body['status']}"
        time.sleep(0.3)


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


def until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.1)
    return value
