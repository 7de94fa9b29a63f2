"""The job runner's queue logic (claiming, limits, cancel, recovery, shutdown) with a test
double in place of HyPhy, on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event

from datamonkey_chat.analyses.hyphy import HyPhyJobSpec, HyPhyResult, ProgressCallback
from datamonkey_chat.analyses.runner import RESTART_MESSAGE, JobRunner, PreparedJob
from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import JobRow


class HandleDouble:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.outcome: asyncio.Future[HyPhyResult] = asyncio.get_running_loop().create_future()

    async def wait(self) -> HyPhyResult:
        return await asyncio.shield(self.outcome)


class ExecutorDouble:
    """Starts nothing: each job waits until the test finishes it (or it is cancelled)."""

    def __init__(self) -> None:
        self.handles: dict[str, HandleDouble] = {}
        self.started: list[str] = []
        self.progress: dict[str, ProgressCallback | None] = {}
        self.live = 0
        self.most_live = 0

    async def start(
        self, spec: HyPhyJobSpec, on_progress: ProgressCallback | None = None
    ) -> HandleDouble:
        handle = HandleDouble(spec.job_id)
        self.handles[spec.job_id] = handle
        self.started.append(spec.job_id)
        self.progress[spec.job_id] = on_progress
        self.live += 1
        self.most_live = max(self.most_live, self.live)
        handle.outcome.add_done_callback(lambda _f: self._ended())
        return handle

    def _ended(self) -> None:
        self.live -= 1

    async def cancel(self, job_id: str) -> bool:
        handle = self.handles.get(job_id)
        if handle is None or handle.outcome.done():
            return False
        handle.outcome.set_result(HyPhyResult(job_id, "cancelled", error="Cancelled"))
        return True

    def finish(self, job_id: str, status: str = "completed", **fields: Any) -> None:
        result = HyPhyResult(job_id, status, **fields)  # type: ignore[arg-type]
        if status == "completed" and "result" not in fields:
            result.result = {"answer": 42}
        self.handles[job_id].outcome.set_result(result)


async def prepare(job_id: str) -> PreparedJob:
    if job_id.startswith("broken"):
        raise ValueError("A dataset of this job was deleted before the job ran")
    return PreparedJob("fel", "alignment.fas", ">a\nATG\n>b\nATG\n", None, {})


def summarize(prepared: PreparedJob, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    return data, {"summary_text": f"{prepared.keyword} says {data['answer']}"}


@pytest.fixture
def make_runner(database: Database) -> Callable[..., JobRunner]:
    def make(executor: ExecutorDouble, max_concurrent: int = 2) -> JobRunner:
        return JobRunner(
            database,
            executor,
            prepare,
            summarize,
            max_concurrent=max_concurrent,
            poll_seconds=0.05,
        )

    return make


async def add_job(database: Database, job_id: str, **fields: Any) -> None:
    values: dict[str, Any] = {
        "id": job_id,
        "user_id": "u",
        "method": "fel",
        "alignment_id": "a",
        "options": json.dumps({}),
        "status": "queued",
        "progress": 0.0,
        "attempts": 0,
        "created_ms": now_ms(),
    }
    values.update(fields)
    async with database.transaction() as db:
        await repository.add_job(db, JobRow(**values))


async def job(database: Database, job_id: str) -> JobRow:
    async with database.session() as db:
        row = await repository.get_job(db, job_id)
    assert row is not None
    return row


async def until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def until_status(database: Database, job_id: str, status: str) -> JobRow:
    for _ in range(500):
        row = await job(database, job_id)
        if row.status == status:
            return row
        await asyncio.sleep(0.01)
    raise AssertionError(f"{job_id} is {row.status}, not {status}")


async def test_a_job_is_claimed_once(database: Database) -> None:
    await add_job(database, "j1")
    async with database.transaction() as db:
        first = await repository.claim_job(db, "j1", "runner-a", now_ms())
    async with database.transaction() as db:
        second = await repository.claim_job(db, "j1", "runner-b", now_ms())
    assert (first, second) == (True, False)
    assert (await job(database, "j1")).runner_id == "runner-a"


async def test_two_runners_share_the_queue_without_duplicates(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executors = [ExecutorDouble(), ExecutorDouble()]
    runners = [make_runner(e, max_concurrent=3) for e in executors]
    for i in range(6):
        await add_job(database, f"j{i}")
    for runner in runners:
        await runner.start()
    await until(lambda: sum(len(e.started) for e in executors) == 6)
    started = [j for e in executors for j in e.started]
    assert sorted(started) == [f"j{i}" for i in range(6)]  # each exactly once
    for executor in executors:
        for job_id in executor.started:
            executor.finish(job_id)
    for i in range(6):
        row = await until_status(database, f"j{i}", "completed")
        assert json.loads(row.summary or "{}") == {"summary_text": "fel says 42"}
        assert json.loads(row.result or "{}") == {"answer": 42} and row.progress == 1.0
    for runner in runners:
        await runner.stop()


async def test_concurrency_is_bounded_and_progress_is_written(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor, max_concurrent=2)
    for i in range(5):
        await add_job(database, f"j{i}", created_ms=i)
    await runner.start()
    await until(lambda: len(executor.started) == 2)
    await asyncio.sleep(0.2)
    assert executor.started == ["j0", "j1"]  # oldest first, and no third one
    callback = executor.progress["j0"]
    assert callback is not None
    callback("Working on site pattern", 0.5)
    callback("Tabulating results", None)  # a heading keeps the fraction
    row = await until_status(database, "j0", "running")
    for _ in range(100):
        row = await job(database, "j0")
        if row.stage == "Tabulating results":
            break
        await asyncio.sleep(0.02)
    assert (row.progress, row.stage) == (0.5, "Tabulating results")
    for expected in (3, 4, 5):  # each finished job frees exactly one slot
        unfinished = [j for j in executor.started if not executor.handles[j].outcome.done()]
        executor.finish(unfinished[0])
        await until(lambda n=expected: len(executor.started) == n)
    assert executor.most_live == 2
    await runner.stop()


async def test_failures_and_time_limits_become_errors(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await add_job(database, "slow")
    await add_job(database, "broken1")
    await runner.start()
    await until(lambda: "slow" in executor.handles)
    executor.finish("slow", "timeout", error="Time limit of 60 s exceeded")
    slow = await until_status(database, "slow", "error")
    assert slow.error_message == "Time limit of 60 s exceeded"
    broken = await until_status(database, "broken1", "error")
    assert broken.error_message == "A dataset of this job was deleted before the job ran"
    await runner.stop()


async def test_cancel_kills_and_a_late_result_does_not_overwrite_it(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await add_job(database, "j1")
    await runner.start()
    await until(lambda: "j1" in executor.handles)
    async with database.transaction() as db:
        assert await repository.cancel_job(db, "j1", "Cancelled by the user", now_ms())
    await runner.kill("j1")
    assert executor.handles["j1"].outcome.result().status == "cancelled"
    await asyncio.sleep(0.2)
    row = await job(database, "j1")
    assert (row.status, row.error_message) == ("error", "Cancelled by the user")
    # a result that raced the cancel is dropped
    await add_job(database, "j2")
    await until(lambda: "j2" in executor.handles)
    async with database.transaction() as db:
        await repository.cancel_job(db, "j2", "Cancelled by the user", now_ms())
    executor.finish("j2")
    await asyncio.sleep(0.2)
    assert (await job(database, "j2")).status == "error"
    await runner.stop()


async def test_recovery_requeues_once_then_gives_up(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    stale, fresh = now_ms() - 3_600_000, now_ms()
    await add_job(database, "retry", status="running", attempts=1, heartbeat_ms=stale)
    await add_job(database, "give-up", status="running", attempts=2, heartbeat_ms=stale)
    await add_job(
        database,
        "alive",
        status="running",
        attempts=1,
        heartbeat_ms=fresh,
        runner_id="another-live-runner",
    )
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await runner.start()
    await until(lambda: "retry" in executor.handles)
    assert (await job(database, "retry")).attempts == 2
    gave_up = await job(database, "give-up")
    assert (gave_up.status, gave_up.error_message) == ("error", RESTART_MESSAGE)
    alive = await job(database, "alive")  # another process's job: left alone
    assert (alive.status, alive.runner_id) == ("running", "another-live-runner")
    assert "alive" not in executor.handles
    await runner.stop()


async def test_stop_requeues_running_jobs_without_counting_an_attempt(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await add_job(database, "j1")
    await runner.start()
    await until(lambda: "j1" in executor.handles)
    await until_status(database, "j1", "running")
    await runner.stop()
    row = await job(database, "j1")
    assert (row.status, row.attempts, row.runner_id) == ("queued", 0, None)


async def test_non_finite_numbers_are_stored_as_null(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await add_job(database, "j1")
    await runner.start()
    await until(lambda: "j1" in executor.handles)
    executor.finish("j1", result={"answer": 42, "LRT": float("nan"), "p": [float("inf"), 0.5]})
    row = await until_status(database, "j1", "completed")
    assert json.loads(row.result or "{}") == {"answer": 42, "LRT": None, "p": [None, 0.5]}
    await runner.stop()


async def test_an_idle_runner_writes_nothing(
    database: Database, make_runner: Callable[..., JobRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every write takes SQLite's one writer slot from the requests creating conversations.
    monkeypatch.setattr("datamonkey_chat.analyses.runner.HEARTBEAT_SECONDS", 0.01)
    commits: list[int] = []
    event.listen(database.engine.sync_engine, "commit", lambda _conn: commits.append(1))
    runner = make_runner(ExecutorDouble())
    await runner.start()
    await asyncio.sleep(0.3)  # several heartbeats and recovery checks
    await runner.stop()
    assert commits == []
