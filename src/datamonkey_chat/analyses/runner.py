"""The job runner: takes queued jobs from the database and runs them through a JobExecutor.

- Claiming is a conditional UPDATE (`status='queued'` -> 'running'), so two runners, in
  one process or several, never take the same job.
- At most `max_concurrent` jobs run at once; each has a wall-clock limit (the executor's).
- Claiming takes the oldest queued jobs with FOR UPDATE SKIP LOCKED on PostgreSQL, so
  runners of several server processes take different jobs without waiting on each other.
- Every runner has an id and refreshes a heartbeat on its running jobs. A running job
  whose heartbeat is stale belongs to a dead process; another runner takes it over and
  asks the executor to adopt its run: a Slurm job still queued or running is followed,
  not submitted again, and a run that finished is collected from its directory. Only
  when there is nothing to follow (a local HyPhy dies with its server) does the job run
  again, if it has been tried fewer than MAX_ATTEMPTS times, with a note saying so; else
  it is marked error with the reason. This check runs at start and then periodically,
  so no job stays "running" forever.
- A finished run's files are in its directory before its end is recorded, and the record
  is retried until the database takes it: a database blip loses no result.
- Cancelling is a DB update (see AnalysesService.cancel_job); the runner kills the process
  of any job it runs that is no longer 'running' in the DB, and writes results only while
  it still owns the job, so a cancelled job never turns 'completed'.
- Clean shutdown kills local processes and puts their jobs back in the queue; Slurm jobs
  keep running and are released for the next server to adopt at once.

The executor is the only part that knows where HyPhy runs (LocalHyPhyExecutor or
SlurmExecutor, both behind the JobExecutor protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamonkey_chat.analyses.hyphy import (
    HyPhyJobSpec,
    HyPhyResult,
    JobExecutor,
    JobHandle,
    OptionValue,
)
from datamonkey_chat.analyses.inputs import finite
from datamonkey_chat.domain.clock import now_ms
from datamonkey_chat.storage import repository
from datamonkey_chat.storage.db import Database
from datamonkey_chat.storage.models import JobRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2
HEARTBEAT_SECONDS = 5.0
STALE_AFTER_HEARTBEATS = 6  # six missed heartbeats: the runner that owned the job is gone
PROGRESS_WRITE_SECONDS = 1.0
RESTART_MESSAGE = (
    "The server running this job stopped while it ran, twice; it was not started again"
)
RESTARTED_NOTE = "The server restarted while this job ran; it was started again."
RECORD_RETRY_MAX_SECONDS = 30.0
MAX_PROGRESS_BEFORE_DONE = 0.99


@dataclass(frozen=True)
class PreparedJob:
    """What the runner hands the executor, built from the job and its datasets."""

    keyword: str  # HyPhy keyword
    alignment_name: str
    alignment_text: str | None  # None: the method runs on the tree alone
    tree_text: str | None
    arguments: dict[str, OptionValue]
    method_id: str = ""  # catalog id: which method module reads the result
    options: dict[str, Any] = field(default_factory=dict)  # the job's checked options
    names: dict[str, str] = field(default_factory=dict)  # safe id HyPhy saw -> user's name


# Builds a job's inputs from the database (raises ValueError with a reason for the user),
# and turns a finished run's JSON into what is stored: (the result JSON, the summary).
Prepare = Callable[[str], Awaitable[PreparedJob]]
Summarize = Callable[[PreparedJob, dict[str, Any]], tuple[dict[str, Any], dict[str, Any]]]


@dataclass
class _Running:
    task: asyncio.Task[None]
    progress: float = 0.0
    stage: str = "Starting"
    written: tuple[float, str] = (0.0, "Starting")
    stopping: bool = False  # killed by shutdown: re-queue instead of failing
    started: float = field(default_factory=time.monotonic)


class JobRunner:
    def __init__(
        self,
        database: Database,
        executor: JobExecutor,
        prepare: Prepare,
        summarize: Summarize,
        max_concurrent: int,
        cpus_per_job: int = 1,
        time_limit_seconds: float | None = None,
        poll_seconds: float = 1.0,
        heartbeat_seconds: float | None = None,
        on_completed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.runner_id = secrets.token_hex(8)
        self._on_completed = on_completed  # after a result is stored (e.g. derived datasets)
        self._database = database
        self._executor = executor
        self._prepare = prepare
        self._summarize = summarize
        self._max_concurrent = max(1, max_concurrent)
        self._cpus = max(1, cpus_per_job)
        self._time_limit = time_limit_seconds
        self._poll_seconds = poll_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._running: dict[str, _Running] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.recover()
        self._loop_task = asyncio.create_task(self._loop(), name="job-runner")

    @property
    def heartbeat_seconds(self) -> float:
        return self._heartbeat_seconds or HEARTBEAT_SECONDS

    @property
    def stale_after_seconds(self) -> float:
        return self.heartbeat_seconds * STALE_AFTER_HEARTBEATS

    async def stop(self) -> None:
        """Local runs: kill them and re-queue their jobs (the next start runs them).
        Slurm runs: leave them running and release them for the next server to adopt."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._executor.survives_restart:
            await self._release_all()
            return
        for job_id, running in list(self._running.items()):
            running.stopping = True
            await self._executor.cancel(job_id)
        tasks = [running.task for running in self._running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=15)

    async def _release_all(self) -> None:
        job_ids = list(self._running)
        for job_id in job_ids:
            await self._executor.detach(job_id)
        tasks = [running.task for running in self._running.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=15)
        try:
            async with self._database.transaction() as db:
                await repository.release_jobs(db, self.runner_id, job_ids)
        except Exception:  # they are adopted after the stale time instead
            log.warning("could not release %d running job(s) at shutdown", len(job_ids))

    @property
    def alive(self) -> bool:
        return self._loop_task is not None and not self._loop_task.done()

    def wake(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wake.set()

    async def kill(self, job_id: str, external_id: str | None = None) -> None:
        """Stop the run of a job that was cancelled in the DB: here, or where `external_id`
        (its Slurm job) says, whichever process follows it."""
        if job_id in self._running:
            await self._executor.cancel(job_id)
        elif external_id is not None:
            await self._executor.cancel(job_id, external_id)

    # ------------------------------------------------------------ the loop

    async def _loop(self) -> None:
        last_beat = 0.0
        while True:
            try:
                if time.monotonic() - last_beat >= self.heartbeat_seconds:
                    last_beat = time.monotonic()
                    await self._beat()
                await self._write_progress()
                await self._fill_slots()
            except asyncio.CancelledError:
                raise
            except Exception:  # a DB hiccup must not end the runner
                log.exception("job runner iteration failed")
            self._wake.clear()
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives as the event is set (a job start just before shutdown), and stop()
            # then waited for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wake.wait()

    async def _fill_slots(self) -> None:
        free = self._max_concurrent - len(self._running)
        if free <= 0 or self._stopping:
            return
        async with self._database.session() as db:
            # look before claiming: an idle runner takes no write transaction
            if not await repository.queued_job_ids(db, 1):
                return
        async with self._database.transaction() as db:
            claimed = await repository.claim_queued_jobs(db, self.runner_id, now_ms(), free)
        for job_id in claimed:
            self._track(job_id, self._run(job_id))

    def _track(self, job_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"job-{job_id}")
        self._running[job_id] = _Running(task)
        task.add_done_callback(functools.partial(self._finished, job_id))

    def _finished(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _beat(self) -> None:
        # An idle runner writes nothing: each write waits for SQLite's one writer slot, and
        # a heartbeat every few seconds would hold up the conversations being created.
        if self._running:
            async with self._database.transaction() as db:
                await repository.heartbeat(db, self.runner_id, now_ms())
                mine = await repository.still_running(db, self.runner_id, list(self._running))
            for job_id in set(self._running) - mine:
                log.info("job %s is no longer running in the database; stopping it", job_id)
                await self._executor.cancel(job_id)
        await self.recover()

    async def recover(self) -> None:
        """Take over running jobs whose runner stopped sending heartbeats: follow or collect
        their runs where the executor can, else re-queue (or fail) them."""
        cutoff = now_ms() - int(self.stale_after_seconds * 1000)
        async with self._database.session() as db:
            stale = await repository.stale_running_jobs(db, cutoff)
        for row in stale:  # usually none: looking takes no writer slot
            if self._stopping:
                return
            if row.id in self._running:
                continue  # ours, alive: its heartbeat only missed a database blip
            async with self._database.transaction() as db:
                mine = await repository.recover_job(
                    db, row.id, cutoff, {"runner_id": self.runner_id, "heartbeat_ms": now_ms()}
                )
            if mine:  # only one runner wins a stale job
                await self._take_over(row)

    async def _take_over(self, row: Any) -> None:
        job_id = row.id
        try:
            handle = await self._executor.adopt(
                job_id, row.slurm_job_id, self._progress_callback(job_id)
            )
        except Exception:  # e.g. Slurm's controller is down: try again when it is stale again
            log.exception("could not ask the executor about job %s", job_id)
            return
        if handle is not None:
            log.warning("job %s was left running by a dead runner: adopted", job_id)
            self._track(job_id, self._follow_adopted(job_id, handle))
            return
        if row.attempts < MAX_ATTEMPTS:
            notes = json.loads(row.notes) if row.notes else []
            values: dict[str, Any] = {
                "status": "queued",
                "runner_id": None,
                "progress": 0.0,
                "stage": None,
                "slurm_job_id": None,
                "notes": json.dumps([*notes, RESTARTED_NOTE]),
            }
        else:
            values = {
                "status": "error",
                "error_message": RESTART_MESSAGE,
                "runner_id": None,
                "finished_ms": now_ms(),
            }
        async with self._database.transaction() as db:
            await repository.update_running_job(db, job_id, self.runner_id, values)
        log.warning("job %s was left running by a dead runner: %s", job_id, values["status"])

    # ------------------------------------------------------------ one job

    async def _run(self, job_id: str) -> None:
        try:
            prepared = await self._prepare(job_id)
        except ValueError as exc:
            await self._fail(job_id, str(exc))
            return
        except Exception:
            log.exception("could not prepare job %s", job_id)
            await self._fail(job_id, "The job's inputs could not be prepared")
            return
        try:
            result = await self._execute(job_id, prepared)
        except Exception as exc:
            log.exception("job %s could not be run", job_id)
            await self._fail(job_id, str(exc) or type(exc).__name__)
            return
        await self._record_or_leave(job_id, prepared, result)

    async def _follow_adopted(self, job_id: str, handle: JobHandle) -> None:
        try:
            prepared = await self._prepare(job_id)
        except Exception as exc:
            log.exception("could not prepare adopted job %s", job_id)
            reason = str(exc) if isinstance(exc, ValueError) else ""
            await self._fail(job_id, reason or "The job's inputs could not be prepared")
            return
        await self._record_or_leave(job_id, prepared, await handle.wait())

    async def _record_or_leave(
        self, job_id: str, prepared: PreparedJob, result: HyPhyResult
    ) -> None:
        try:
            await self._record(job_id, prepared, result)
        except Exception:
            # Only at shutdown: the run's files stay, and the next runner collects them.
            log.exception("the end of job %s was not recorded; it will be collected", job_id)

    async def _execute(self, job_id: str, prepared: PreparedJob) -> HyPhyResult:
        with tempfile.TemporaryDirectory(prefix="dmc-inputs-") as staging:
            alignment: Path | None = None
            if prepared.alignment_text is not None:
                alignment = Path(staging) / prepared.alignment_name
                alignment.write_text(prepared.alignment_text)
            tree: Path | None = None
            if prepared.tree_text is not None:
                tree = Path(staging) / "tree.nwk"
                tree.write_text(prepared.tree_text)
            spec = HyPhyJobSpec(
                job_id=job_id,
                method=prepared.keyword,
                alignment=alignment,
                tree=tree,
                options=prepared.arguments,
                cpus=self._cpus,
                time_limit_seconds=self._time_limit,
            )
            handle = await self._executor.start(spec, self._progress_callback(job_id))
        if handle.external_id is not None:
            await self._remember_external_id(job_id, handle.external_id)
        if self._stopping and not self._executor.survives_restart:  # shutdown while starting
            await self._executor.cancel(job_id)
        return await handle.wait()

    async def _remember_external_id(self, job_id: str, external_id: str) -> None:
        try:
            async with self._database.transaction() as db:
                await repository.update_running_job(
                    db, job_id, self.runner_id, {"slurm_job_id": external_id}
                )
        except Exception:  # the run is still found by its name after a restart
            log.warning("could not store the executor id of job %s", job_id)

    def _progress_callback(self, job_id: str) -> Callable[[str, float | None], None]:
        def on_progress(stage: str, fraction: float | None) -> None:
            running = self._running.get(job_id)
            if running is None:
                return
            running.stage = stage[:200]
            if fraction is not None:  # monotone: HyPhy's counters restart per stage
                running.progress = max(running.progress, min(fraction, MAX_PROGRESS_BEFORE_DONE))

        return on_progress

    async def _write_progress(self) -> None:
        for job_id, running in list(self._running.items()):
            latest = (running.progress, running.stage)
            if latest == running.written:
                continue
            running.written = latest
            async with self._database.transaction() as db:
                await repository.update_running_job(
                    db,
                    job_id,
                    self.runner_id,
                    {
                        "progress": running.progress,
                        "stage": running.stage,
                        "heartbeat_ms": now_ms(),
                    },
                )

    async def _record(self, job_id: str, prepared: PreparedJob, result: HyPhyResult) -> None:
        running = self._running.get(job_id)
        if result.status == "cancelled" and running is not None and running.stopping:
            await self._requeue(job_id)
            return
        if result.status == "completed" and result.result is not None:
            stored = result.result
            try:
                # CPU-bound on large results: off the event loop
                stored, summary = await asyncio.to_thread(self._summarize, prepared, result.result)
            except Exception:  # the run is still good: keep it, say the summary failed
                log.exception("summary of job %s failed", job_id)
                summary = {"summary_text": "No summary could be computed; see the full JSON."}
            values: dict[str, Any] = {
                "status": "completed",
                "progress": 1.0,
                "stage": "Completed",
                # HyPhy may write NaN/Infinity, which strict JSON readers refuse
                "result": json.dumps(finite(stored), allow_nan=False, default=str),
                "summary": json.dumps(summary, allow_nan=False),
                "finished_ms": now_ms(),
            }
        else:
            values = {
                "status": "error",
                "error_message": result.error or f"HyPhy {result.status}",
                "finished_ms": now_ms(),
            }
        written = await self._write_end(job_id, values)
        if not written:
            log.info("job %s ended as %s but was cancelled or taken over", job_id, result.status)
        if written and values["status"] == "completed" and result.workdir is not None:
            # the JSON is in the database now; failed jobs keep their directory for diagnosis
            shutil.rmtree(result.workdir, ignore_errors=True)
        if written and values["status"] == "completed" and self._on_completed is not None:
            try:
                await self._on_completed(job_id)
            except Exception:  # the result is stored; what follows from it is extra
                log.exception("follow-up of job %s failed", job_id)

    async def _write_end(self, job_id: str, values: dict[str, Any]) -> bool:
        """Record how a run ended, retrying while the database is away (the run's files are
        kept meanwhile); gives up only at shutdown, leaving the files for the next runner."""
        delay = 0.5
        while True:
            try:
                async with self._database.transaction() as db:
                    return await repository.update_running_job(db, job_id, self.runner_id, values)
            except Exception as exc:
                if self._stopping:
                    raise
                log.warning(
                    "could not record the end of job %s (%s); retrying in %.1f s",
                    job_id,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)

    async def _fail(self, job_id: str, message: str) -> None:
        async with self._database.transaction() as db:
            await repository.update_running_job(
                db,
                job_id,
                self.runner_id,
                {"status": "error", "error_message": message[:2000], "finished_ms": now_ms()},
            )

    async def _requeue(self, job_id: str) -> None:
        # Interrupted by our own shutdown: not the job's fault, so the attempt is not counted.
        async with self._database.transaction() as db:
            await repository.update_running_job(
                db,
                job_id,
                self.runner_id,
                {
                    "status": "queued",
                    "runner_id": None,
                    "progress": 0.0,
                    "stage": None,
                    "attempts": JobRow.attempts - 1,
                },
            )
