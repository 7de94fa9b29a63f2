#!/usr/bin/env python
"""Load benchmark: our server beside a bare FastAPI baseline, measured with wrk.

Starts `datamonkey-chat serve` (SQLite in a throw-away data directory, or the database given
with --database-url) and, from this same script, a bare FastAPI app that answers the same four
routes with constant JSON (no database, no auth) under uvicorn: one worker, h11 and asyncio's
loop like `serve` (`--baseline-http httptools`, `--baseline-loop uvloop` for uvicorn's faster
defaults), no access log. Then runs
`wrk --latency` against both for create, list, get and get-messages at 1, 16 and 64
connections and prints a markdown table with the ratio to the baseline and whether the
targets hold:

* at 64 connections: >= 50 % of the baseline's req/s, and p99 within 2x the baseline's p99;
* at 1 connection: p50 < 3 ms.

Usage: .venv/bin/python bench/load.py [--repeat 3] [--database-url postgresql+asyncpg://...]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

API = "/api/v1"
RESULT_MARKER = "BENCH_RESULT "
LIST_SIZE = 10  # conversations owned by the reading user
TURNS = 2  # user/assistant turns in the conversation that get / get-messages read

# Minimum req/s ratio and maximum p99 ratio to the baseline at the highest concurrency,
# and the highest p50 at one connection.
MIN_RPS_RATIO = 0.5
MAX_P99_RATIO = 2.0
MAX_P50_MS_AT_1 = 3.0
TARGET_CONNECTIONS_HIGH = 64
TARGET_CONNECTIONS_LOW = 1

# wrk's done() hook prints one JSON line we parse (latencies in microseconds).
LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    "{marker}", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class Scenario:
    """One operation as wrk sends it."""

    name: str
    method: str
    path: str
    body: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Measurement:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors plus non-2xx/3xx responses

    @staticmethod
    def median_of(runs: Sequence[Measurement]) -> Measurement:
        """Each figure's median over repeated runs of one cell; errors add up."""
        return Measurement(
            requests_per_s=statistics.median(r.requests_per_s for r in runs),
            p50_ms=statistics.median(r.p50_ms for r in runs),
            p99_ms=statistics.median(r.p99_ms for r in runs),
            errors=sum(r.errors for r in runs),
        )


@dataclass(frozen=True)
class Row:
    scenario: str
    connections: int
    ours: Measurement
    baseline: Measurement

    @property
    def rps_ratio(self) -> float:
        return self.ours.requests_per_s / self.baseline.requests_per_s

    @property
    def p99_ratio(self) -> float:
        return self.ours.p99_ms / self.baseline.p99_ms

    def verdict(self) -> str:
        """Whether this row's target holds ('' where no target applies)."""
        if self.ours.errors:
            return "FAIL (errors)"
        if self.connections == TARGET_CONNECTIONS_HIGH:
            ok = self.rps_ratio >= MIN_RPS_RATIO and self.p99_ratio <= MAX_P99_RATIO
            return "ok" if ok else "MISS"
        if self.connections == TARGET_CONNECTIONS_LOW:
            return "ok" if self.ours.p50_ms < MAX_P50_MS_AT_1 else "MISS"
        return ""


# --------------------------------------------------------------------------------------------
# The baseline: a bare FastAPI app answering the same routes with constant JSON.


def serve_baseline(port: int, payloads_file: Path, http: str, loop: str) -> None:
    """Run the baseline app (this process becomes the server)."""
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    payloads: dict[str, Any] = json.loads(payloads_file.read_text())
    app = FastAPI()

    @app.post(f"{API}/chat", status_code=201)
    async def create(body: dict[str, Any] | None = None) -> JSONResponse:
        return JSONResponse(payloads["create"], status_code=201)

    @app.get(f"{API}/chat")
    async def list_() -> JSONResponse:
        return JSONResponse(payloads["list"])

    @app.get(API + "/chat/{conversation_id}")
    async def get(conversation_id: str) -> JSONResponse:
        return JSONResponse(payloads["get"])

    @app.get(API + "/chat/{conversation_id}/messages")
    async def messages(conversation_id: str) -> JSONResponse:
        return JSONResponse(payloads["get-messages"])

    @app.post(API + "/chat/{conversation_id}/messages")
    async def send(conversation_id: str, body: dict[str, Any]) -> JSONResponse:
        # bench/sends.py: a send that parses its body like ours, and answers our reply
        return JSONResponse(payloads.get("send", {}))

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        http=http,
        loop=loop,
        access_log=False,
        log_level="warning",
    )


# --------------------------------------------------------------------------------------------
# Processes and HTTP helpers.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def request(
    url: str, method: str = "GET", body: Any = None, token: str | None = None
) -> tuple[int, Message, Any]:
    """One request; returns status, headers (case-insensitive) and the decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token:
        headers["user_token"] = token
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as response:
            raw = response.read()
            return response.status, response.headers, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, exc.headers, json.loads(raw) if raw else None


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no answer from {url} within {timeout} s")


@contextmanager
def running(
    command: Sequence[str], ready_url: str, env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(ready_url, process)
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------------------------------
# Data set-up and scenarios.


def session_token(base: str) -> str:
    status, headers, _ = request(f"{base}{API}/chat", "POST", {"title": "session"})
    token = headers.get("X-Session-Token")
    if status != 201 or not token:
        raise RuntimeError(f"POST /chat gave {status} and no X-Session-Token")
    return token


def prepare(base: str) -> tuple[list[Scenario], dict[str, Any]]:
    """Create the users and data the scenarios read; return them and our actual payloads."""
    writer = session_token(base)  # creates go to their own user, so the list stays small
    reader = session_token(base)
    conversation_ids = []
    for i in range(LIST_SIZE - 1):  # session_token already made one
        status, _, body = request(f"{base}{API}/chat", "POST", {"title": f"bench {i}"}, reader)
        assert status == 201, (status, body)
        conversation_ids.append(body["id"])
    target = conversation_ids[0]
    for i in range(TURNS):
        status, _, body = request(
            f"{base}{API}/chat/{target}/messages", "POST", {"message": f"hello {i}"}, reader
        )
        if status != 200:
            print(f"warning: sending a message gave {status}: {body}", file=sys.stderr)
            break
    create_body = json.dumps({"title": "bench"})
    scenarios = [
        Scenario("create", "POST", f"{API}/chat", create_body, writer),
        Scenario("list", "GET", f"{API}/chat", token=reader),
        Scenario("get", "GET", f"{API}/chat/{target}", token=reader),
        Scenario("get-messages", "GET", f"{API}/chat/{target}/messages", token=reader),
    ]
    payloads: dict[str, Any] = {}
    for scenario in scenarios:
        body = json.loads(scenario.body) if scenario.body else None
        status, _, payload = request(base + scenario.path, scenario.method, body, scenario.token)
        if status >= 300:
            raise RuntimeError(f"{scenario.name}: {status} {payload}")
        payloads[scenario.name] = payload
    return scenarios, payloads


def lua_script(scenario: Scenario) -> str:
    lines = [f'wrk.method = "{scenario.method}"']
    if scenario.body is not None:
        lines.append(f"wrk.body = {json.dumps(scenario.body)}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
    if scenario.token:
        lines.append(f'wrk.headers["user_token"] = "{scenario.token}"')
    return "\n".join(lines) + LUA_DONE.replace("{marker}", RESULT_MARKER)


def run_wrk(
    base: str, scenario: Scenario, connections: int, duration: float, threads: int, workdir: Path
) -> Measurement:
    script = workdir / f"{scenario.name}.lua"
    script.write_text(lua_script(scenario))
    command = [
        "wrk",
        "--latency",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base + scenario.path,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in output.splitlines() if x.startswith(RESULT_MARKER))
    stats = json.loads(line[len(RESULT_MARKER) :])
    errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    return Measurement(
        requests_per_s=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=errors,
    )


def measure(
    targets: dict[str, str],
    scenarios: Sequence[Scenario],
    connection_levels: Sequence[int],
    duration: float,
    threads: int,
    warmup: float,
    repeat: int,
    workdir: Path,
) -> dict[str, dict[tuple[str, int], Measurement]]:
    """Run every cell `repeat` times against every target in turn (label -> base URL).

    Cell by cell and target by target, rather than server by server, so that a slower or
    busier minute of the machine falls on both sides of a ratio instead of on one; the
    median of the repeats keeps one disturbed run from deciding a cell.
    """
    results: dict[str, dict[tuple[str, int], Measurement]] = {label: {} for label in targets}
    for scenario in scenarios:
        for connections in connection_levels:
            runs: dict[str, list[Measurement]] = {label: [] for label in targets}
            for _ in range(repeat):
                for label, base in targets.items():
                    # Warm up at this cell's own connection count, so that the cell
                    # measures steady state rather than the first moments of new connections.
                    if warmup > 0:
                        run_wrk(base, scenario, connections, warmup, threads, workdir)
                    runs[label].append(
                        run_wrk(base, scenario, connections, duration, threads, workdir)
                    )
            for label in targets:
                result = results[label][scenario.name, connections] = Measurement.median_of(
                    runs[label]
                )
                print(
                    f"  {label:8} {scenario.name:12} c={connections:<3} "
                    f"{result.requests_per_s:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
                    f"(median of {repeat})",
                    file=sys.stderr,
                )
    return results


# --------------------------------------------------------------------------------------------
# Report.


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| operation | conns | req/s | p50 ms | p99 ms | baseline req/s | baseline p50 ms "
        "| baseline p99 ms | req/s ratio | p99 ratio | target |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        o, b = row.ours, row.baseline
        lines.append(
            f"| {row.scenario} | {row.connections} | {o.requests_per_s:,.0f} | {o.p50_ms:.2f} "
            f"| {o.p99_ms:.2f} | {b.requests_per_s:,.0f} | {b.p50_ms:.2f} | {b.p99_ms:.2f} "
            f"| {row.rps_ratio:.0%} | {row.p99_ratio:.2f}x | {row.verdict()} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--database-url",
        help="e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        " (default: SQLite in a temporary data directory)",
    )
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per cell and server; the table shows medians"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per cell")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (<= connections)")
    parser.add_argument(
        "--log-level",
        help="our server's log level (default: its own, INFO, "
        "which writes one access line per request)",
    )
    parser.add_argument(
        "--baseline-http",
        choices=["httptools", "h11"],
        default="h11",  # what `serve` uses (h11 keeps X-Session-Token's case on the wire)
        help="the baseline's HTTP protocol (ours is whatever `datamonkey-chat serve` picks)",
    )
    parser.add_argument(
        "--baseline-loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",  # what `serve` uses (uvloop accepts one connection per tick)
        help="the baseline's event loop (ours is whatever `datamonkey-chat serve` picks)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--payloads", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_baseline:
        serve_baseline(args.serve_baseline, args.payloads, args.baseline_http, args.baseline_loop)
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    levels = [int(x) for x in args.connections.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="datamonkey-bench-"))
    env = {
        **os.environ,
        "DATAMONKEY_CHAT_DATA_DIR": str(workdir / "data"),
    }
    if args.log_level:
        env["DATAMONKEY_CHAT_LOG_LEVEL"] = args.log_level
    if args.database_url:
        env["DATAMONKEY_CHAT_DATABASE_URL"] = args.database_url
    else:
        env.pop("DATAMONKEY_CHAT_DATABASE_URL", None)
    ours_port, baseline_port = free_port(), free_port()
    ours = f"http://127.0.0.1:{ours_port}"
    baseline = f"http://127.0.0.1:{baseline_port}"
    serve = [
        sys.executable,
        "-m",
        "datamonkey_chat",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(ours_port),
    ]
    try:
        with running(serve, f"{ours}{API}/openapi.json", env, workdir / "server.log"):
            scenarios, payloads = prepare(ours)
            payloads_file = workdir / "payloads.json"
            payloads_file.write_text(json.dumps(payloads))
            print(f"our server on {ours} ({args.database_url or 'SQLite'})", file=sys.stderr)
            baseline_cmd = [
                sys.executable,
                __file__,
                "--serve-baseline",
                str(baseline_port),
                "--payloads",
                str(payloads_file),
                "--baseline-http",
                args.baseline_http,
                "--baseline-loop",
                args.baseline_loop,
            ]
            with running(baseline_cmd, f"{baseline}{API}/chat", env, workdir / "baseline.log"):
                print(f"baseline on {baseline}", file=sys.stderr)
                results = measure(
                    {"ours": ours, "baseline": baseline},
                    scenarios,
                    levels,
                    args.duration,
                    args.threads,
                    args.warmup,
                    args.repeat,
                    workdir,
                )
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        Row(s.name, c, results["ours"][s.name, c], results["baseline"][s.name, c])
        for s in scenarios
        for c in levels
    ]
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\n{database}; baseline on {args.baseline_http}, {args.baseline_loop}; "
        f"wrk -t{args.threads}; median of {args.repeat} runs of {args.duration:g} s per cell; "
        f"{os.cpu_count()} CPUs\n"
    )
    print(markdown_table(rows))
    missed = [r for r in rows if r.verdict() not in ("ok", "")]
    print(f"\ntargets: {'all hold' if not missed else f'{len(missed)} missed'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
