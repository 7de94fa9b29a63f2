#!/usr/bin/env python
"""Send benchmark: throughput and latency of sends, and what a send and a page cost as a
conversation grows, beside the bare FastAPI baseline of bench/load.py.

Starts `datamonkey-chat serve` (offline assistant; SQLite in a throw-away data directory, or
--database-url) and the baseline app (constant JSON answers, including a send's), then:

1. sends: wrk POSTs a message round-robin over 256 conversations at 64 connections (targets:
   >= 250 sends/s, p99 <= 300 ms, no error); the baseline's send route the same way;
2. turns: one client, one conversation grown to 10, 100 and 1,000 turns; at each, the median
   of --samples sends and of --samples reads of the newest page of 50 messages (targets: a send
   at turn 1,000 within 2x of one at turn 10; the page under 20 ms p50);
3. list under sends: another user's `GET /chat` at 4 connections alone, then while 200
   connections send (target: p99 under 50 ms).

Usage: .venv/bin/python bench/sends.py [--database-url postgresql+asyncpg://...]
See bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import (  # noqa: E402  (bench/ is not a package)
    API,
    LUA_DONE,
    RESULT_MARKER,
    Measurement,
    free_port,
    request,
    running,
    session_token,
)

CONVERSATIONS = 256
SEND_CONNECTIONS = 64
LOAD_CONNECTIONS = 200
LIST_CONNECTIONS = 4
TURN_LEVELS = (10, 100, 1000)
PAGE = 50
MESSAGE = "what is FEL?"

MIN_SENDS_PER_S = 250
MAX_SEND_P99_MS = 300
MAX_TURN_RATIO = 2.0
MAX_PAGE_P50_MS = 20
MAX_LIST_P99_UNDER_SENDS_MS = 50


def send_lua(token: str, paths: Sequence[str]) -> str:
    """wrk script: POST the message to each conversation in turn."""
    listed = ",".join(json.dumps(p) for p in paths)
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps({'message': MESSAGE}))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["user_token"] = "{token}"\n'
        f"local paths = {{{listed}}}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i + 1\n"
        "  return wrk.format(nil, paths[(i % #paths) + 1])\n"
        "end\n" + LUA_DONE.replace("{marker}", RESULT_MARKER)
    )


def get_lua(token: str) -> str:
    return f'wrk.method = "GET"\nwrk.headers["user_token"] = "{token}"\n' + LUA_DONE.replace(
        "{marker}", RESULT_MARKER
    )


def wrk_command(url: str, script: Path, connections: int, duration: float) -> list[str]:
    return [
        "wrk",
        "--latency",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]


def parse_wrk(output: str) -> Measurement:
    line = next(x for x in output.splitlines() if x.startswith(RESULT_MARKER))
    stats = json.loads(line[len(RESULT_MARKER) :])
    return Measurement(
        requests_per_s=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=sum(stats[k] for k in ("connect", "read", "write", "status", "timeout")),
    )


def wrk(url: str, script: Path, connections: int, duration: float) -> Measurement:
    command = wrk_command(url, script, connections, duration)
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


class Client:
    """One keep-alive HTTP connection, timing each request."""

    def __init__(self, base: str, token: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self._connection = http.client.HTTPConnection(host, int(port), timeout=60)
        self._token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[float, Any]:
        headers = {"user_token": self._token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):  # a server may close an idle keep-alive connection
            start = time.perf_counter()
            try:
                self._connection.request(method, API + path, body=data, headers=headers)
                response = self._connection.getresponse()
                raw = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._connection.close()
                if attempt == 2:
                    raise
        elapsed_ms = (time.perf_counter() - start) * 1000
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:200]!r}")
        return elapsed_ms, json.loads(raw) if raw else None

    def close(self) -> None:
        self._connection.close()


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples)


def turn_costs(base: str, baseline: str, samples: int) -> list[dict[str, Any]]:
    """Send and page cost at each turn level, in one conversation grown turn by turn."""
    token = session_token(base)
    ours = Client(base, token)
    _, conversation = ours.call("POST", "/chat", {"title": "turns"})
    path = f"/chat/{conversation['id']}/messages"
    bare = Client(baseline, token)
    rows = []
    turn = 0
    for level in TURN_LEVELS:
        while turn < level - 1:
            ours.call("POST", path, {"message": f"{MESSAGE} ({turn})"})
            turn += 1
        sends = []
        for _ in range(samples):
            sends.append(ours.call("POST", path, {"message": f"{MESSAGE} ({turn})"})[0])
            turn += 1
        pages = [ours.call("GET", f"{path}?limit={PAGE}")[0] for _ in range(samples)]
        bare_sends = [bare.call("POST", path, {"message": MESSAGE})[0] for _ in range(samples)]
        bare_pages = [bare.call("GET", f"{path}?limit={PAGE}")[0] for _ in range(samples)]
        rows.append(
            {
                "turn": level,
                "send_ms": median_ms(sends),
                "page_ms": median_ms(pages),
                "baseline_send_ms": median_ms(bare_sends),
                "baseline_page_ms": median_ms(bare_pages),
            }
        )
        print(f"  turn {level}: {rows[-1]}", file=sys.stderr)
    ours.close()
    bare.close()
    return rows


def list_under_sends(
    base: str, workdir: Path, send_script: Path, duration: float
) -> tuple[Measurement, Measurement]:
    """Another user's list alone, then while LOAD_CONNECTIONS connections send."""
    reader = session_token(base)
    for i in range(9):
        request(f"{base}{API}/chat", "POST", {"title": f"list {i}"}, reader)
    list_script = workdir / "list.lua"
    list_script.write_text(get_lua(reader))
    alone = wrk(f"{base}{API}/chat", list_script, LIST_CONNECTIONS, duration)
    load = subprocess.Popen(
        wrk_command(f"{base}{API}/chat", send_script, LOAD_CONNECTIONS, duration + 2),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # the sends are in flight before the list is measured
        loaded = wrk(f"{base}{API}/chat", list_script, LIST_CONNECTIONS, duration)
    finally:
        output, _ = load.communicate()
    sends = parse_wrk(output)
    print(f"  sends during the list run: {sends}", file=sys.stderr)
    return alone, loaded


def prepare_sends(base: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    token = session_token(base)
    paths = []
    for i in range(CONVERSATIONS):
        status, _, body = request(f"{base}{API}/chat", "POST", {"title": f"send {i}"}, token)
        assert status == 201, (status, body)
        paths.append(f"{API}/chat/{body['id']}/messages")
    status, _, reply = request(base + paths[0], "POST", {"message": MESSAGE}, token)
    assert status == 200, (status, reply)
    script = workdir / "send.lua"
    script.write_text(send_lua(token, paths))
    return script, reply


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(
    sends: Measurement,
    baseline_sends: Measurement,
    turns: list[dict[str, Any]],
    list_alone: Measurement,
    list_loaded: Measurement,
    title: str,
) -> str:
    send_ok = (
        sends.requests_per_s >= MIN_SENDS_PER_S
        and sends.p99_ms <= MAX_SEND_P99_MS
        and sends.errors == 0
    )
    lines = [
        title,
        "",
        "| sends (64 connections, 256 conversations) | sends/s | p50 ms | p99 ms | errors "
        "| target |",
        "|---|--:|--:|--:|--:|---|",
        f"| ours | {sends.requests_per_s:,.0f} | {sends.p50_ms:.2f} | {sends.p99_ms:.2f} "
        f"| {sends.errors} | {verdict(send_ok)} |",
        f"| baseline | {baseline_sends.requests_per_s:,.0f} | {baseline_sends.p50_ms:.2f} "
        f"| {baseline_sends.p99_ms:.2f} | {baseline_sends.errors} |  |",
        "",
        "| turn | send p50 ms | vs turn 10 | page of 50 p50 ms | baseline send ms "
        "| baseline page ms | target |",
        "|--:|--:|--:|--:|--:|--:|---|",
    ]
    first = turns[0]["send_ms"]
    for row in turns:
        ratio = row["send_ms"] / first
        ok = ratio <= MAX_TURN_RATIO and row["page_ms"] < MAX_PAGE_P50_MS
        lines.append(
            f"| {row['turn']:,} | {row['send_ms']:.2f} | {ratio:.2f}x | {row['page_ms']:.2f} "
            f"| {row['baseline_send_ms']:.2f} | {row['baseline_page_ms']:.2f} | {verdict(ok)} |"
        )
    list_ok = list_loaded.p99_ms < MAX_LIST_P99_UNDER_SENDS_MS and list_loaded.errors == 0
    lines += [
        "",
        "| another user's list, 4 connections | req/s | p50 ms | p99 ms | errors | target |",
        "|---|--:|--:|--:|--:|---|",
        f"| alone | {list_alone.requests_per_s:,.0f} | {list_alone.p50_ms:.2f} "
        f"| {list_alone.p99_ms:.2f} | {list_alone.errors} |  |",
        f"| while 200 connections send | {list_loaded.requests_per_s:,.0f} "
        f"| {list_loaded.p50_ms:.2f} | {list_loaded.p99_ms:.2f} | {list_loaded.errors} "
        f"| {verdict(list_ok)} |",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", help="default: SQLite in a temporary data directory")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="send runs; medians are shown")
    parser.add_argument("--samples", type=int, default=30, help="requests per turn level")
    parser.add_argument("--log-level", help="our server's log level (default: INFO)")
    parser.add_argument(
        "--server-python",
        default=sys.executable,
        help="the Python whose datamonkey_chat is served (e.g. another checkout's .venv, to "
        "measure the code before a change the same way)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="our server's processes (`serve --workers`; more than 1 needs --database-url)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="datamonkey-sends-"))
    env = {**os.environ, "DATAMONKEY_CHAT_DATA_DIR": str(workdir / "data")}
    env.pop("DATAMONKEY_CHAT_MODEL", None)  # the offline assistant
    # The benchmark is one session sending as fast as it can: per-session rate limits
    # (where the server has them) would answer most of it 429.
    env["DATAMONKEY_CHAT_RATE_LIMITS"] = "false"
    if args.log_level:
        env["DATAMONKEY_CHAT_LOG_LEVEL"] = args.log_level
    if args.database_url:
        env["DATAMONKEY_CHAT_DATABASE_URL"] = args.database_url
    else:
        env.pop("DATAMONKEY_CHAT_DATABASE_URL", None)
    ours_port, baseline_port = free_port(), free_port()
    ours, baseline = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{baseline_port}"
    serve = [args.server_python, "-m", "datamonkey_chat", "serve", "--host", "127.0.0.1"]
    serve += ["--port", str(ours_port), "--workers", str(args.workers)]
    try:
        with running(serve, f"{ours}{API}/openapi.json", env, workdir / "server.log"):
            send_script, reply = prepare_sends(ours, workdir)
            payloads_file = workdir / "payloads.json"
            # The baseline answers every route it has with our send's reply.
            payloads_file.write_text(
                json.dumps(
                    {
                        "create": {},
                        "list": {},
                        "get": {},
                        "get-messages": {"messages": [], "next_cursor": None},
                        "send": reply,
                    }
                )
            )
            baseline_cmd = [sys.executable, str(Path(__file__).parent / "load.py")]
            baseline_cmd += ["--serve-baseline", str(baseline_port), "--payloads"]
            baseline_cmd += [str(payloads_file)]
            with running(baseline_cmd, f"{baseline}{API}/chat", env, workdir / "baseline.log"):
                ours_runs, baseline_runs = [], []
                for _ in range(args.repeat):
                    for label, base, runs in (
                        ("ours", ours, ours_runs),
                        ("baseline", baseline, baseline_runs),
                    ):
                        # Warm up at one connection: sends still queued in the server
                        # when a warm-up run stops would be counted in the measured run.
                        wrk(f"{base}{API}/chat", send_script, 1, 1)
                        runs.append(
                            wrk(f"{base}{API}/chat", send_script, SEND_CONNECTIONS, args.duration)
                        )
                        print(f"  {label} sends: {runs[-1]}", file=sys.stderr)
                sends = Measurement.median_of(ours_runs)
                baseline_sends = Measurement.median_of(baseline_runs)
                turns = turn_costs(ours, baseline, args.samples)
                list_alone, list_loaded = list_under_sends(
                    ours, workdir, send_script, args.duration
                )
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    database = "PostgreSQL" if args.database_url else "SQLite"
    title = (
        f"{database}; offline assistant; wrk -t1, median of {args.repeat} runs of "
        f"{args.duration:g} s; {os.cpu_count()} CPUs"
    )
    print("\n" + report(sends, baseline_sends, turns, list_alone, list_loaded, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
