"""Run HyPhy on a Slurm cluster through Slurm's own commands.

`sbatch --parsable` submits a small batch script written into the job's directory (on
storage every node sees): it runs HyPhy there with stdin from /dev/null and its output in
`stdout.log`, then writes HyPhy's exit code to `exit_code`. The Slurm job's name is
`dmc-<our job id>`, so a job whose Slurm id was never recorded can still be found.
`scontrol show job` (no accounting database needed, unlike `sacct`) gives the state;
progress is HyPhy's stage headings read from `stdout.log`; `scancel` cancels.

Every command runs as an argument list with asyncio's subprocesses, never through a shell.
Runs outlive the server (`survives_restart`): a restarted server adopts them by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from datamonkey_chat.analyses.hyphy import (
    STDOUT_FILE,
    FinishedJob,
    HyPhyJobSpec,
    HyPhyResult,
    ProgressCallback,
    ProgressParser,
    build_command,
    collect_result,
    fresh_workdir,
    read_exit_code,
    safe_workdir,
    stage_input,
)

log = logging.getLogger(__name__)

JOB_NAME_PREFIX = "dmc-"
COMMAND_TIMEOUT_SECONDS = 30.0
EXIT_CODE_WAIT_SECONDS = 10.0  # shared storage may show the file a moment after Slurm ends
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
# Why a job ended, when Slurm (not HyPhy) ended it.
SLURM_ENDINGS = {
    "CANCELLED": "The job was cancelled in Slurm (scancel), not by its user",
    "NODE_FAIL": "The Slurm node running the job failed",
    "OUT_OF_MEMORY": "Slurm stopped the job: it ran out of memory",
    "PREEMPTED": "Slurm preempted the job",
    "BOOT_FAIL": "The Slurm node for the job failed to boot",
    "DEADLINE": "Slurm ended the job at its deadline",
}


class SlurmError(RuntimeError):
    """A Slurm command failed; the message says which and why."""


@dataclass(frozen=True)
class SlurmState:
    state: str  # JobState, e.g. RUNNING, COMPLETED, TIMEOUT
    reason: str
    exit_code: int | None  # from ExitCode=N:signal

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES


async def run_command(argv: Sequence[str]) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) of a Slurm command; SlurmError if it cannot run."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise SlurmError(f"{argv[0]} could not be run: {exc.strerror or exc}") from None
    try:
        out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise SlurmError(f"{argv[0]} did not answer within {COMMAND_TIMEOUT_SECONDS:g} s") from None
    code = process.returncode if process.returncode is not None else -1
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def parse_scontrol(text: str) -> dict[str, str]:
    """`scontrol show job -o` prints one line of Key=Value fields."""
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def parse_state(fields: dict[str, str]) -> SlurmState:
    state = fields.get("JobState", "UNKNOWN").split("+")[0]
    code_text = fields.get("ExitCode", "").split(":")[0]
    return SlurmState(
        state=state,
        reason=fields.get("Reason", ""),
        exit_code=int(code_text) if code_text.isdigit() else None,
    )


def batch_script(workdir: Path, argv: Sequence[str]) -> str:
    """The script sbatch runs: HyPhy in the job directory, then its exit code to a file."""
    return "\n".join(
        [
            "#!/bin/bash",
            "# Written by Datamonkey Chat; one HyPhy run.",
            f"cd {shlex.quote(str(workdir))} || exit 1",
            f"{shlex.join(argv)} < /dev/null > {STDOUT_FILE} 2>&1",
            "code=$?",
            'printf "%s\\n" "$code" > exit_code.partial && mv -f exit_code.partial exit_code',
            'exit "$code"',
            "",
        ]
    )


def time_limit_minutes(seconds: float | None) -> str | None:
    if not seconds or seconds <= 0:
        return None
    return str(max(1, math.ceil(seconds / 60)))


class SlurmJob:
    """Follows one Slurm job by polling until it ends."""

    def __init__(
        self,
        executor: SlurmExecutor,
        job_id: str,
        slurm_id: str,
        workdir: Path,
        on_progress: ProgressCallback | None,
        time_limit: str | None,
    ) -> None:
        self.job_id = job_id
        self.external_id: str | None = slurm_id
        self.slurm_id = slurm_id
        self.workdir = workdir
        self._executor = executor
        self._on_progress = on_progress
        self._time_limit = time_limit
        self._parser = ProgressParser()
        self._offset = 0
        self._partial = ""
        self._queued_reported = False
        self.cancelled = False
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._follow(), name=f"slurm-{job_id}")

    async def wait(self) -> HyPhyResult:
        return await asyncio.shield(self._task)

    def stop_following(self) -> None:
        self._task.cancel()

    async def _follow(self) -> HyPhyResult:
        while True:
            self._read_progress()
            try:
                state = await self._executor.job_state(self.slurm_id)
            except SlurmError as exc:  # the controller restarting: ask again later
                log.warning("job %s: %s", self.job_id, exc)
                state = SlurmState("UNREACHABLE", "", None)
            if state is None or not (state.active or state.state == "UNREACHABLE"):
                self._read_progress()
                return await self._ended(state)
            if state.state == "PENDING" and not self._queued_reported and self._on_progress:
                self._queued_reported = True
                why = f" ({state.reason})" if state.reason not in ("", "None") else ""
                self._on_progress(f"Waiting in the Slurm queue{why}", None)
            await asyncio.sleep(self._executor.poll_seconds)

    async def _ended(self, state: SlurmState | None) -> HyPhyResult:
        duration = round(time.monotonic() - self._started, 3)
        if self.cancelled:
            return self._result("cancelled", "Cancelled", duration)
        if state is not None and state.state == "TIMEOUT":
            limit = f" of {self._time_limit} min" if self._time_limit else ""
            return self._result("timeout", f"Time limit{limit} exceeded (Slurm)", duration)
        if state is not None and state.state in SLURM_ENDINGS:
            return self._result("error", SLURM_ENDINGS[state.state], duration)
        code = await self._exit_code(state)
        if code is None:
            gone = "no longer knows" if state is None else f"ended ({state.state})"
            message = f"Slurm {gone} job {self.slurm_id}, and HyPhy left no exit code"
            return self._result("error", message, duration)
        return collect_result(self.job_id, self.workdir, code, duration)

    async def _exit_code(self, state: SlurmState | None) -> int | None:
        deadline = time.monotonic() + (EXIT_CODE_WAIT_SECONDS if state is not None else 0)
        while (code := read_exit_code(self.workdir)) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        return code

    def _result(self, status: str, error: str, duration: float) -> HyPhyResult:
        return HyPhyResult(
            job_id=self.job_id,
            status=status,  # type: ignore[arg-type]
            error=error,
            exit_code=read_exit_code(self.workdir),
            duration_seconds=duration,
            workdir=self.workdir,
        )

    def _read_progress(self) -> None:
        """New lines of HyPhy's output since the last poll (headings give the stage)."""
        try:
            with (self.workdir / STDOUT_FILE).open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk.decode(errors="replace")).split("\n")
        for line in lines:
            update = self._parser.feed(line)
            if update and self._on_progress:
                self._on_progress(*update)


class SlurmExecutor:
    """`JobExecutor` that submits each HyPhy run as one Slurm batch job."""

    survives_restart = True

    def __init__(
        self,
        jobs_dir: Path,
        hyphy_binary: str,
        partition: str | None = None,
        cpus_per_job: int = 1,
        time_limit: str | None = None,
        extra_args: Sequence[str] = (),
        poll_seconds: float = 2.0,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.hyphy_binary = hyphy_binary
        self.partition = partition
        self.cpus_per_job = max(1, cpus_per_job)
        self.time_limit = time_limit
        self.extra_args = list(extra_args)
        self.poll_seconds = poll_seconds
        self._jobs: dict[str, SlurmJob] = {}

    # ------------------------------------------------------------ JobExecutor

    async def start(
        self, spec: HyPhyJobSpec, on_progress: ProgressCallback | None = None
    ) -> SlurmJob:
        spec = replace(spec, cpus=self.cpus_per_job)
        workdir = fresh_workdir(self.jobs_dir, spec.job_id).resolve()
        alignment = stage_input(spec.alignment, workdir) if spec.alignment else None
        tree = stage_input(spec.tree, workdir) if spec.tree else None
        argv = build_command(
            Path(self.hyphy_binary), spec, alignment, tree, workdir / "result.json"
        )
        script = workdir / "job.sh"
        script.write_text(batch_script(workdir, argv))
        script.chmod(0o755)
        time_limit = self.time_limit or time_limit_minutes(spec.time_limit_seconds)
        slurm_id = await self._submit(spec.job_id, workdir, script, time_limit)
        log.info("job %s submitted to Slurm as %s", spec.job_id, slurm_id)
        return self._follow(spec.job_id, slurm_id, workdir, on_progress, time_limit)

    async def adopt(
        self, job_id: str, external_id: str | None, on_progress: ProgressCallback | None = None
    ) -> SlurmJob | FinishedJob | None:
        workdir = safe_workdir(self.jobs_dir, job_id).resolve()
        slurm_id = external_id or await self.find_by_name(job_id)
        if slurm_id is not None and await self.job_state(slurm_id) is not None:
            time_limit = self.time_limit
            return self._follow(job_id, slurm_id, workdir, on_progress, time_limit)
        code = read_exit_code(workdir)  # Slurm has forgotten it: did it finish?
        if code is not None:
            return FinishedJob(job_id, collect_result(job_id, workdir, code), slurm_id)
        return None

    async def cancel(self, job_id: str, external_id: str | None = None) -> bool:
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancelled = True
            slurm_id = job.slurm_id
        elif external_id is not None:  # followed by another process, or by none
            slurm_id = external_id
        else:
            return False
        code, _out, err = await run_command(["scancel", slurm_id])
        if code != 0:
            log.warning("scancel %s failed: %s", slurm_id, err.strip())
        return True

    async def detach(self, job_id: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is not None:
            job.stop_following()

    # ------------------------------------------------------------ Slurm commands

    async def _submit(
        self, job_id: str, workdir: Path, script: Path, time_limit: str | None
    ) -> str:
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={JOB_NAME_PREFIX}{job_id}",
            f"--chdir={workdir}",
            f"--output={workdir / 'slurm-%j.out'}",
            f"--cpus-per-task={self.cpus_per_job}",
            "--ntasks=1",
            "--no-requeue",  # a node failure ends the job; it never silently runs twice
        ]
        if self.partition:
            argv.append(f"--partition={self.partition}")
        if time_limit:
            argv.append(f"--time={time_limit}")
        argv += [*self.extra_args, str(script)]
        code, out, err = await run_command(argv)
        slurm_id = out.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"
        if code != 0 or not slurm_id.isdigit():
            raise SlurmError(f"Slurm did not accept the job: {err.strip() or out.strip()}")
        return slurm_id

    async def job_state(self, slurm_id: str) -> SlurmState | None:
        """The job's state, or None when Slurm no longer knows the job (it was purged)."""
        code, out, err = await run_command(["scontrol", "show", "job", "-o", slurm_id])
        if code != 0:
            if "Invalid job id" in err + out:
                return None
            raise SlurmError(f"scontrol show job {slurm_id} failed: {err.strip()}")
        return parse_state(parse_scontrol(out))

    async def find_by_name(self, job_id: str) -> str | None:
        """The Slurm id of our job `job_id` (its id may not have been stored before a crash)."""
        code, out, err = await run_command(
            [
                "squeue",
                "--noheader",
                "--states=all",
                f"--name={JOB_NAME_PREFIX}{job_id}",
                "-o",
                "%i",
            ]
        )
        if code != 0:
            raise SlurmError(f"squeue failed: {err.strip()}")
        ids = [line.strip() for line in out.splitlines() if line.strip().isdigit()]
        return ids[-1] if ids else None

    def _follow(
        self,
        job_id: str,
        slurm_id: str,
        workdir: Path,
        on_progress: ProgressCallback | None,
        time_limit: str | None,
    ) -> SlurmJob:
        job = SlurmJob(self, job_id, slurm_id, workdir, on_progress, time_limit)
        self._jobs[job_id] = job
        job._task.add_done_callback(lambda _task: self._forget(job_id, job))
        return job

    def _forget(self, job_id: str, job: SlurmJob) -> None:
        if self._jobs.get(job_id) is job:
            del self._jobs[job_id]


def split_extra_args(text: str) -> list[str]:
    """DATAMONKEY_CHAT_SLURM_EXTRA_ARGS, split like a shell would split it."""
    return shlex.split(text)
