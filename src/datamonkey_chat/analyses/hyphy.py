"""Run HyPhy safely: binary discovery, a per-job sandbox directory, progress, limits, cancel.

HyPhy is started as `BINARY <keyword> [--alignment A] [--tree T] [--key value ...] --output
O.json CPU=N` (a method reading only a tree, e.g. `sm`, gets no `--alignment`) with stdin
from /dev/null (a missing option would otherwise wait for the keyboard forever), in a fresh
working directory (it writes errors.log and caches beside its inputs), in its own process
group (so cancel/timeout kill everything it started).

Progress: by default the process runs under a pseudo-terminal. On a pipe HyPhy prints
only markdown `### Stage` headings; on a terminal it also redraws counters such as
`Working on site pattern 17/181` (lines ended by '\\r', wrapped in ANSI codes), which
give a real fraction. `use_pty=False` falls back to a pipe (headings only).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import pty
import re
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from datamonkey_chat.settings import Settings

ProgressCallback = Callable[[str, float | None], None]
JobStatus = Literal["completed", "error", "cancelled", "timeout"]
# A list repeats the flag (`--branch-set A --branch-set B`), as HyPhy wants for several sets.
OptionValue = str | int | float | bool | list[str]

HYPHY_DIR = Path("/usr/lib/hyphy/bin")
# Best first; each needs these /proc/cpuinfo flags. /usr/bin/hyphy is a wrapper that joins
# all arguments into one string, so it is never used.
_CANDIDATES: tuple[tuple[str, frozenset[str]], ...] = (
    ("hyphy-avx", frozenset({"avx"})),
    ("hyphy-sse3", frozenset({"pni"})),  # cpuinfo calls SSE3 "pni"
    ("hyphy", frozenset()),
)
KILL_GRACE_SECONDS = 3.0
MAX_STAGE_CHARS = 120  # some headings list every branch
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]")
_HEADING = re.compile(r"^#{2,4}\s+(.+?)\s*$")
_REDRAW = "\x1b[2K"  # HyPhy clears the line before redrawing a progress counter
_COUNTER = re.compile(r"(\d+)\s*/\s*(\d+)")
_ERROR_SUFFIX = re.compile(r"\s+in call to .*$", re.S)


# ---------------------------------------------------------------- binary discovery


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def find_hyphy_binary(settings: Settings | None = None, hyphy_dir: Path = HYPHY_DIR) -> Path | None:
    """The configured binary, else the best one in /usr/lib/hyphy/bin for this CPU."""
    configured = settings.hyphy_binary if settings else None
    if configured:
        path = Path(configured) if "/" in configured else _which(configured)
        return path if path and _is_executable(path) else None
    flags = cpu_flags()
    for name, needed in _CANDIDATES:
        path = hyphy_dir / name
        if needed <= flags and _is_executable(path):
            return path
    return None


def _which(name: str) -> Path | None:
    found = shutil.which(name)
    return Path(found) if found else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def hyphy_available(settings: Settings | None = None) -> bool:
    return find_hyphy_binary(settings) is not None


# ---------------------------------------------------------------- job model


@dataclass(frozen=True)
class HyPhyJobSpec:
    """Everything needed to run one analysis; paths are copied into the job directory."""

    job_id: str
    method: str  # HyPhy keyword: fel, fubar, absrel, ...
    alignment: Path | None  # None: the method reads only the tree
    tree: Path | None = None
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    cpus: int = 1
    time_limit_seconds: float | None = None


@dataclass
class HyPhyResult:
    job_id: str
    status: JobStatus
    result: dict[str, Any] | None = None  # the parsed HyPhy JSON on success
    error: str | None = None
    exit_code: int | None = None
    duration_seconds: float = 0.0
    workdir: Path | None = None
    output_path: Path | None = None
    stdout_tail: str = ""


class JobHandle(Protocol):
    job_id: str
    external_id: str | None  # the executor's own id for the run (Slurm's job id), if any

    async def wait(self) -> HyPhyResult: ...


class JobExecutor(Protocol):
    """Runs analyses somewhere: this machine (LocalHyPhyExecutor) or Slurm (SlurmExecutor).

    Every run has its directory `jobs_dir/<job id>`; a run that ended wrote `exit_code`
    there (and HyPhy its `result.json`), so a finished run can be collected by any process.
    """

    # True when runs go on without the server that started them (Slurm): shutdown then
    # leaves them running for the next server to follow, instead of killing them.
    survives_restart: bool

    async def start(
        self, spec: HyPhyJobSpec, on_progress: ProgressCallback | None = None
    ) -> JobHandle: ...

    async def adopt(
        self, job_id: str, external_id: str | None, on_progress: ProgressCallback | None = None
    ) -> JobHandle | None:
        """Follow a run another (dead) server started, or collect it if it finished;
        None when there is nothing to follow (the job must run again)."""
        ...

    async def cancel(self, job_id: str, external_id: str | None = None) -> bool:
        """Stop a run: one this process follows, else (Slurm) the one `external_id` names,
        which another process follows or none does."""
        ...

    async def detach(self, job_id: str) -> None:
        """Stop following a run without stopping it (shutdown with survives_restart)."""
        ...


# ---------------------------------------------------------------- command line


def _option_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"  # HyPhy's own spelling for yes/no options
    return str(value)


def build_command(
    binary: Path, spec: HyPhyJobSpec, alignment: Path | None, tree: Path | None, output: Path
) -> list[str]:
    if alignment is None and tree is None:
        raise ValueError("HyPhy needs an alignment or a tree")
    argv = [str(binary), spec.method]
    if alignment is not None:
        argv += ["--alignment", str(alignment)]
    if tree is not None:
        argv += ["--tree", str(tree)]
    for key, value in spec.options.items():
        if key in ("alignment", "tree", "output"):
            raise ValueError(f"option '{key}' is set by the runner")
        for item in value if isinstance(value, list) else [value]:
            argv += [f"--{key}", _option_value(item)]
    return argv + ["--output", str(output), f"CPU={max(1, spec.cpus)}"]


# ---------------------------------------------------------------- output parsing


class ProgressParser:
    """Turns HyPhy's output into (stage, fraction) updates, at most one per percent."""

    def __init__(self) -> None:
        self.stage = "Starting"
        self._last: tuple[str, float | None] | None = None

    def feed(self, line: str) -> tuple[str, float | None] | None:
        text = _ANSI.sub("", line).strip()
        heading = _HEADING.match(text)
        if heading:
            self.stage = heading.group(1).strip("*_ ")[:MAX_STAGE_CHARS]
            return self._emit(self.stage, None)
        counter = _COUNTER.search(text)
        if counter and _REDRAW in line:  # only redrawn terminal lines are counters
            done, total = int(counter.group(1)), int(counter.group(2))
            if 0 < total and done <= total:
                # the counter names the work better than the heading HyPhy prints next
                return self._emit(text[: counter.start()].strip(), round(done / total, 2))
        return None

    def _emit(self, stage: str, fraction: float | None) -> tuple[str, float | None] | None:
        update = (stage, fraction)
        if update == self._last:
            return None
        self._last = update
        return update


def error_reason(stdout: str, errors_log: str = "") -> str | None:
    """The reason HyPhy gives after 'Error:' (stdout first, then errors.log)."""
    for text in (stdout, errors_log):
        clean = _ANSI.sub("", text)
        idx = clean.find("Error:")
        if idx < 0:
            continue
        rest = clean[idx + len("Error:") :].strip()
        para = rest.split("\n\n", 1)[0].strip()
        reason = _ERROR_SUFFIX.sub("", " ".join(para.split())).strip()
        if reason:
            return reason[:1000]
    return None


def read_result_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


EXIT_CODE_FILE = "exit_code"  # written when HyPhy exited by itself: the run is over
STDOUT_FILE = "stdout.log"
RESULT_FILE = "result.json"


def read_exit_code(workdir: Path) -> int | None:
    try:
        return int((workdir / EXIT_CODE_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def write_exit_code(workdir: Path, code: int) -> None:
    """Atomically, so a reader never sees half a file."""
    partial = workdir / (EXIT_CODE_FILE + ".partial")
    partial.write_text(f"{code}\n")
    partial.replace(workdir / EXIT_CODE_FILE)


def failure_reason(workdir: Path, exit_code: int | None) -> str:
    """HyPhy's own error text (its output, then errors.log), else what is known."""

    def read(name: str) -> str:
        path = workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    reason = error_reason(read(STDOUT_FILE), read("errors.log"))
    if reason:
        return reason
    if exit_code == 0:
        return "HyPhy finished but wrote no readable result JSON"
    return f"HyPhy exited with code {exit_code} without an error message"


def collect_result(
    job_id: str, workdir: Path, exit_code: int | None, duration_seconds: float = 0.0
) -> HyPhyResult:
    """The outcome of a run that ended by itself, from the files in its directory."""
    output = workdir / RESULT_FILE
    result = HyPhyResult(
        job_id=job_id,
        status="error",
        exit_code=exit_code,
        duration_seconds=duration_seconds,
        workdir=workdir,
        output_path=output,
    )
    if exit_code == 0 and (data := read_result_json(output)):
        result.status, result.result = "completed", data
    else:
        result.error = failure_reason(workdir, exit_code)
    return result


@dataclass
class FinishedJob:
    """A handle on a run that had already ended when this process found it."""

    job_id: str
    result: HyPhyResult
    external_id: str | None = None

    async def wait(self) -> HyPhyResult:
        return self.result


def safe_workdir(jobs_dir: Path, job_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", job_id):
        raise ValueError(f"job id '{job_id}' is not a safe directory name")
    return jobs_dir / job_id


def fresh_workdir(jobs_dir: Path, job_id: str) -> Path:
    workdir = safe_workdir(jobs_dir, job_id)
    if workdir.exists():
        shutil.rmtree(workdir)  # a re-queued job starts clean (no stale caches)
    workdir.mkdir(parents=True)
    return workdir


def stage_input(source: Path, workdir: Path) -> Path:
    """Inputs go in the job directory: HyPhy writes its .cache files beside them."""
    target = workdir / source.name
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    return target


# ---------------------------------------------------------------- dying with the server

_PR_SET_PDEATHSIG = 1
_libc: Any = None


def _load_libc() -> Any:
    """libc for prctl, loaded in the parent (loading a library after fork is unsafe)."""
    global _libc
    if _libc is None:
        import ctypes
        import ctypes.util

        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    return _libc


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the child when this process dies.

    So a server killed with `kill -9` takes its HyPhy runs with it: another server then
    runs the job again, never alongside a leftover run. Linux only (elsewhere: None).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = _load_libc()
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# ---------------------------------------------------------------- local executor


class _OutputStream:
    """Lines from the child's stdout (pty master or pipe), split on '\\n' and '\\r'."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._on_readable)
        self._closed = False

    def _on_readable(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the pty's other side closed (child exited)
            if exc.errno != errno.EIO:
                raise
            chunk = b""
        if not chunk:
            self.close()
        self._queue.put_nowait(chunk or None)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._fd)
            os.close(self._fd)

    async def lines(self) -> Any:
        buf = ""
        while (chunk := await self._queue.get()) is not None:
            buf += chunk.decode("utf-8", "replace")
            *complete, buf = re.split(r"\r\n|\r|\n", buf)
            for line in complete:
                yield line
        if buf:
            yield buf


class LocalHyPhyJob:
    """One HyPhy process on this machine."""

    def __init__(
        self,
        spec: HyPhyJobSpec,
        binary: Path,
        workdir: Path,
        on_progress: ProgressCallback | None,
        use_pty: bool,
    ) -> None:
        self.job_id = spec.job_id
        self.external_id: str | None = None
        self.spec = spec
        self.workdir = workdir
        self._binary = binary
        self._on_progress = on_progress
        self._use_pty = use_pty
        self._process: asyncio.subprocess.Process | None = None
        self._cancelled = False
        self._task: asyncio.Task[HyPhyResult] | None = None

    async def _launch(self) -> None:
        alignment = stage_input(self.spec.alignment, self.workdir) if self.spec.alignment else None
        tree = stage_input(self.spec.tree, self.workdir) if self.spec.tree else None
        self.output = self.workdir / RESULT_FILE
        argv = build_command(self._binary, self.spec, alignment, tree, self.output)
        (self.workdir / "command.txt").write_text(" ".join(argv) + "\n")
        read_fd, write_fd = pty.openpty() if self._use_pty else os.pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                start_new_session=True,  # own process group: kill it whole
                preexec_fn=die_with_parent(),
                env={**os.environ, "TERM": "dumb"},
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._stream = _OutputStream(read_fd)
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._supervise())

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        assert self._task is not None, "job was not started"
        self._task.add_done_callback(lambda _task: callback())

    async def wait(self) -> HyPhyResult:
        assert self._task is not None, "job was not started"
        return await asyncio.shield(self._task)

    async def cancel(self) -> None:
        self._cancelled = True
        await self._kill()

    async def _kill(self) -> None:
        proc = self._process
        if proc is None or proc.returncode is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _supervise(self) -> HyPhyResult:
        tail: deque[str] = deque(maxlen=200)
        log_path = self.workdir / STDOUT_FILE
        reader = asyncio.create_task(self._pump(tail, log_path))
        timed_out = False
        try:
            await asyncio.wait_for(self._wait_process(), self.spec.time_limit_seconds)
        except TimeoutError:
            timed_out = True
            await self._kill()
        finally:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(reader, 5.0)  # grandchildren may hold the pty open
            self._stream.close()
        code = self._process.returncode if self._process else None
        if code is not None and not (timed_out or self._cancelled):
            # the run is over: a process that takes over the job collects it from here
            write_exit_code(self.workdir, code)
        return self._outcome(timed_out, "\n".join(tail))

    async def _wait_process(self) -> None:
        assert self._process is not None
        await self._process.wait()

    async def _pump(self, tail: deque[str], log_path: Path) -> None:
        parser = ProgressParser()
        with log_path.open("w", encoding="utf-8") as log:
            async for line in self._stream.lines():
                log.write(line + "\n")
                tail.append(_ANSI.sub("", line))
                update = parser.feed(line)
                if update and self._on_progress:
                    self._on_progress(*update)

    def _outcome(self, timed_out: bool, stdout_tail: str) -> HyPhyResult:
        assert self._process is not None
        duration = round(time.monotonic() - self._started, 3)
        if self._cancelled or timed_out:
            result = HyPhyResult(
                job_id=self.job_id,
                status="cancelled" if self._cancelled else "timeout",
                exit_code=self._process.returncode,
                duration_seconds=duration,
                workdir=self.workdir,
                output_path=self.output,
            )
            result.error = (
                "Cancelled"
                if self._cancelled
                else f"Time limit of {self.spec.time_limit_seconds:g} s exceeded"
            )
        else:
            result = collect_result(self.job_id, self.workdir, self._process.returncode, duration)
        result.stdout_tail = stdout_tail[-4000:]
        return result


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # pid == pgid: started with start_new_session


class LocalHyPhyExecutor:
    """`JobExecutor` that runs HyPhy processes on this machine, one directory per job.

    A run dies with the server process that started it (see `die_with_parent`), so after
    a crash there is nothing to follow: `adopt` collects a run that had finished, and
    otherwise the job runs again.
    """

    survives_restart = False

    def __init__(
        self,
        jobs_dir: Path,
        binary: Path | None = None,
        default_time_limit: float | None = None,
        use_pty: bool = True,
    ) -> None:
        self.jobs_dir = jobs_dir
        self.binary = binary or find_hyphy_binary()
        self.default_time_limit = default_time_limit
        self.use_pty = use_pty
        self._jobs: dict[str, LocalHyPhyJob] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalHyPhyExecutor:
        return cls(
            jobs_dir=settings.data_dir / "jobs",
            binary=find_hyphy_binary(settings),
            default_time_limit=settings.job_time_limit_seconds,
        )

    async def start(
        self, spec: HyPhyJobSpec, on_progress: ProgressCallback | None = None
    ) -> LocalHyPhyJob:
        if self.binary is None:
            raise HyPhyUnavailableError(
                "HyPhy is not installed: install it (apt-get install hyphy-pt, or "
                "conda install -c bioconda hyphy) or set DATAMONKEY_CHAT_HYPHY_BINARY"
            )
        if spec.time_limit_seconds is None and self.default_time_limit:
            spec = replace(spec, time_limit_seconds=self.default_time_limit)
        workdir = fresh_workdir(self.jobs_dir, spec.job_id)
        job = LocalHyPhyJob(spec, self.binary, workdir, on_progress, self.use_pty)
        await job._launch()
        self._jobs[spec.job_id] = job
        job.add_done_callback(lambda: self._jobs.pop(spec.job_id, None))
        return job

    async def adopt(
        self, job_id: str, external_id: str | None, on_progress: ProgressCallback | None = None
    ) -> FinishedJob | None:
        workdir = safe_workdir(self.jobs_dir, job_id)
        code = read_exit_code(workdir)
        if code is None:
            return None  # HyPhy died with the server that ran it
        return FinishedJob(job_id, collect_result(job_id, workdir, code))

    async def cancel(self, job_id: str, external_id: str | None = None) -> bool:
        job = self._jobs.get(job_id)  # a local run is only ever this process's
        if job is None:
            return False
        await job.cancel()
        return True

    async def detach(self, job_id: str) -> None:
        await self.cancel(job_id)  # a local run cannot outlive its server

    async def run(
        self, spec: HyPhyJobSpec, on_progress: ProgressCallback | None = None
    ) -> HyPhyResult:
        """start + wait, for callers that do not need the handle."""
        return await (await self.start(spec, on_progress)).wait()


class HyPhyUnavailableError(RuntimeError):
    pass
