"""The job runner's queue logic (claiming, limits, cancel, recovery, shutdown) with a test
double in place of HyPhy, on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from datamonkey_chat.analyses.hyphy import HyPhyJobSpec, HyPhyResult, ProgressCallback
from datamonkey_chat.analyses.runner import (
    RESTART_MESSAGE,
    RESTARTED_NOTE,
    JobRunner,
    PreparedJob,
)
from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import JobRow
from tests.conftest import POSTGRES_URL, _reset_postgres


class HandleDouble:
    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.external_id: str | None = None
        self.outcome: asyncio.Future[HyPhyResult] = asyncio.get_running_loop().create_future()

    async def wait(self) -> HyPhyResult:
        return await asyncio.shield(self.outcome)


class ExecutorDouble:
    """Starts nothing: each job waits until the test finishes it (or it is cancelled).

    `survives_restart` and `adoptable` make it behave like Slurm: runs outlive the runner,
    and a new runner adopts the runs named in `adoptable`."""

    survives_restart = False

    def __init__(self) -> None:
        self.adoptable: dict[str, HyPhyResult | None] = {}  # None: still running
        self.adopted: list[str] = []
        self.detached: list[str] = []
        self.cancelled_elsewhere: list[tuple[str, str]] = []  # (job id, external id)
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

    async def adopt(
        self, job_id: str, external_id: str | None, on_progress: ProgressCallback | None = None
    ) -> HandleDouble | None:
        if job_id not in self.adoptable:
            return None
        self.adopted.append(job_id)
        handle = HandleDouble(job_id)
        self.handles[job_id] = handle
        finished = self.adoptable[job_id]
        if finished is not None:
            handle.outcome.set_result(finished)
        return handle

    async def detach(self, job_id: str) -> None:
        self.detached.append(job_id)

    async def cancel(self, job_id: str, external_id: str | None = None) -> bool:
        if external_id is not None:
            self.cancelled_elsewhere.append((job_id, external_id))
            return True
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


async def test_a_run_another_process_follows_is_cancelled_by_its_external_id(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await runner.kill("elsewhere", None)  # nothing to go by: nothing happens
    assert executor.cancelled_elsewhere == []
    await runner.kill("elsewhere", "4711")  # e.g. a Slurm job another server submitted
    assert executor.cancelled_elsewhere == [("elsewhere", "4711")]
    await add_job(database, "here")
    await runner.start()
    await until(lambda: "here" in executor.handles)
    await runner.kill("here", "4712")  # followed here: cancelled through its handle
    assert executor.handles["here"].outcome.result().status == "cancelled"
    assert executor.cancelled_elsewhere == [("elsewhere", "4711")]
    await runner.stop()


async def test_stop_right_after_a_wake_returns(make_runner: Callable[..., JobRunner]) -> None:
    """A job started just before shutdown wakes the loop as stop() cancels it: the cancel
    must not be lost (Python 3.11's wait_for swallowed it, and stop() waited forever)."""
    runner = make_runner(ExecutorDouble())
    await runner.start()
    await asyncio.sleep(0.1)  # the loop is idle, waiting to be woken
    runner.wake()
    stopping = asyncio.ensure_future(runner.stop())
    done, _ = await asyncio.wait([stopping], timeout=5)  # waits, never cancels stop()
    assert done, "stop() hung: the loop lost its cancellation"


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


async def test_a_stale_job_is_adopted_not_run_again_and_a_lost_one_runs_again_with_a_note(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    stale = now_ms() - 3_600_000
    await add_job(
        database, "followed", status="running", attempts=1, heartbeat_ms=stale, slurm_job_id="7"
    )
    await add_job(database, "finished", status="running", attempts=1, heartbeat_ms=stale)
    await add_job(database, "lost", status="running", attempts=1, heartbeat_ms=stale)
    executor = ExecutorDouble()
    executor.adoptable = {
        "followed": None,  # still running in the executor
        "finished": HyPhyResult("finished", "completed", result={"answer": 42}),
    }
    runner = make_runner(executor)
    await runner.start()
    done = await until_status(database, "finished", "completed")
    assert json.loads(done.summary or "{}") == {"summary_text": "fel says 42"}
    await until(lambda: "lost" in executor.started)  # nothing to follow: it ran again
    lost = await job(database, "lost")
    assert lost.attempts == 2 and json.loads(lost.notes or "[]") == [RESTARTED_NOTE]
    assert sorted(executor.adopted) == ["finished", "followed"]
    assert "followed" not in executor.started  # followed, not started a second time
    executor.handles["followed"].outcome.set_result(
        HyPhyResult("followed", "completed", result={"answer": 42})
    )
    followed = await until_status(database, "followed", "completed")
    assert (followed.attempts, followed.runner_id) == (1, runner.runner_id)
    await runner.stop()


async def test_shutdown_leaves_surviving_runs_running_for_the_next_runner(
    database: Database, make_runner: Callable[..., JobRunner]
) -> None:
    executor = ExecutorDouble()
    executor.survives_restart = True
    first = make_runner(executor)
    await add_job(database, "j1")
    await first.start()
    await until(lambda: "j1" in executor.handles)
    await until_status(database, "j1", "running")
    await first.stop()
    assert executor.detached == ["j1"]
    assert not executor.handles["j1"].outcome.done()  # not cancelled
    row = await job(database, "j1")
    assert (row.status, row.attempts, row.heartbeat_ms) == ("running", 1, 0)  # released

    executor.adoptable = {"j1": HyPhyResult("j1", "completed", result={"answer": 42})}
    second = make_runner(executor)
    await second.start()  # adopts at once: a released job need not go stale first
    row = await until_status(database, "j1", "completed")
    assert row.attempts == 1 and executor.started == ["j1"]
    await second.stop()


async def test_a_database_blip_at_the_end_loses_no_result(
    database: Database, make_runner: Callable[..., JobRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = repository.update_running_job
    failures: list[str] = []

    async def failing_twice(db: Any, job_id: str, runner_id: str, values: dict[str, Any]) -> bool:
        if values.get("status") == "completed" and len(failures) < 2:
            failures.append(job_id)
            raise OperationalError("UPDATE jobs", {}, ConnectionError("database went away"))
        return await real(db, job_id, runner_id, values)

    monkeypatch.setattr(repository, "update_running_job", failing_twice)
    monkeypatch.setattr("datamonkey_chat.analyses.runner.RECORD_RETRY_MAX_SECONDS", 0.1)
    executor = ExecutorDouble()
    runner = make_runner(executor)
    await add_job(database, "j1")
    await runner.start()
    await until(lambda: "j1" in executor.handles)
    executor.finish("j1")
    row = await until_status(database, "j1", "completed")
    assert failures == ["j1", "j1"] and json.loads(row.result or "{}") == {"answer": 42}
    assert executor.started == ["j1"]  # recorded, not run again
    await runner.stop()


async def test_claims_on_postgresql_skip_the_rows_another_claim_holds() -> None:
    try:
        await asyncio.to_thread(_reset_postgres, POSTGRES_URL)  # it runs its own loop
    except OSError as exc:  # CI always has PostgreSQL; a laptop may not
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    database = Database(POSTGRES_URL)
    try:
        await database.migrate()
        for i in range(4):
            await add_job(database, f"j{i}", created_ms=i)
        async with database.transaction() as first:
            mine = await repository.claim_queued_jobs(first, "runner-a", now_ms(), 2)
            # the first claim is not committed yet: the second takes other rows, at once
            async with database.transaction() as second:
                theirs = await asyncio.wait_for(
                    repository.claim_queued_jobs(second, "runner-b", now_ms(), 2), timeout=10
                )
        assert (mine, theirs) == (["j0", "j1"], ["j2", "j3"])
        owners = {f"j{i}": (await job(database, f"j{i}")).runner_id for i in range(4)}
        assert owners == {"j0": "runner-a", "j1": "runner-a", "j2": "runner-b", "j3": "runner-b"}
    finally:
        await database.dispose()
