#!/usr/bin/env python
"""Hostile-input run: each case an attacker would try, sent to a fresh server on 127.0.0.1.

Starts `datamonkey-chat serve` (SQLite in a throw-away data directory, default settings),
then sends each case below once, in turn, and records its status, the time until the answer
began (from the first byte sent) and how much of its body had been sent by then. Memory:
the server's own peak (VmHWM, /proc/<pid>/status) against its resident size before the
first case, and the peak of its child processes together (the parse workers and their fork
server), sampled every 20 ms. Targets: every case answered within 5 s, and the server's
growth over the whole run under 150 MB.

Bounded: 13 cases, each with a 60 s timeout, about 1.5 GB sent in all, to 127.0.0.1 only.

Usage: .venv/bin/python bench/hostile.py   (prints a markdown table)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

API = "/api/v1"
MB = 1024 * 1024
CHUNK = 256 * 1024
CASE_TIMEOUT = 60.0
TARGET_SECONDS = 5.0
TARGET_GROWTH_MB = 150.0
BOUNDARY = "hostilebench"

PHYLIP_MILLION = "1000000 4\na ACGT\n"
PHYLIP_HUGE = "999999999 999999999\na ACGT\n"
NEXUS_NCHAR = (
    "#NEXUS\nbegin data; dimensions ntax=2 nchar=999999999; format datatype=dna;\n"
    "matrix\na ACGT\nb ACGT\n;\nend;\n"
)
DEEP_TREE = "(" * 10_000 + "a,b" + ")" * 10_000 + ";"
DEEP_NEXUS = (
    "#NEXUS\nbegin data; dimensions ntax=2 nchar=3; format datatype=dna;\n"
    f"matrix\na ATG\nb ATA\n;\nend;\nbegin trees; tree t = {DEEP_TREE}\nend;\n"
)


@dataclass
class Outcome:
    case: str
    statuses: list[int]
    seconds: float  # until the last of the case's answers began
    sent_mb: float  # body bytes sent before the answers came, all requests of the case


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(data_dir: Path) -> Iterator[tuple[int, int]]:
    """`datamonkey-chat serve` with default settings; yields its pid and port."""
    port = free_port()
    script = shutil.which("datamonkey-chat", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "datamonkey_chat"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAMONKEY_CHAT_")}
    env["DATAMONKEY_CHAT_DATA_DIR"] = str(data_dir)
    env["DATAMONKEY_CHAT_LOG_LEVEL"] = "WARNING"
    with (data_dir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start; see server.log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{API}/methods", timeout=2)
                break
            except OSError:
                time.sleep(0.1)
        yield process.pid, port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        parent = stack.pop()
        try:
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = (task / "children").read_text().split()
                found.extend(int(c) for c in children)
                stack.extend(int(c) for c in children)
        except OSError:
            continue
    return found


class ChildrenPeak:
    """Samples the summed RSS of the server's child processes in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.baseline_kb = self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        return sum(status_kb(child, "VmRSS") for child in descendants(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, self.sample())

    def __enter__(self) -> ChildrenPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------- sending


async def body_of(size: int, prefix: bytes = b"") -> AsyncIterator[bytes]:
    yield prefix
    block = b"A" * CHUNK
    left = size - len(prefix)
    while left > 0:
        yield block[: min(CHUNK, left)]
        left -= CHUNK


async def send(
    port: int,
    path: str,
    content_type: str,
    chunks: AsyncIterator[bytes],
    length: int | None,
    token: str = "",
) -> tuple[int, float, int]:
    """One request; status, seconds until the answer began, body bytes sent by then."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {API}{path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    head.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if token:
        head.append(f"user_token: {token}")
    started = time.perf_counter()
    answer = asyncio.create_task(reader.readuntil(b"\r\n"))
    sent = 0
    answered_after = 0
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        async for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk if length is not None else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
        if length is None and not answer.done():
            writer.write(b"0\r\n\r\n")
    except ConnectionError:
        pass  # the server answered and closed
    try:
        status_line = await asyncio.wait_for(answer, CASE_TIMEOUT)
        elapsed = time.perf_counter() - started
        answered_after = sent
        status = int(status_line.split()[1])
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        status, elapsed = 0, time.perf_counter() - started
    writer.close()
    return status, elapsed, answered_after


def multipart(text: str, filename: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        f"\r\nContent-Type: text/plain\r\n\r\n{text}\r\n--{BOUNDARY}--\r\n"
    ).encode()


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


UPLOAD = f"multipart/form-data; boundary={BOUNDARY}"
JSON = "application/json"


async def upload(port: int, text: str, name: str) -> tuple[int, float, int]:
    data = multipart(text, name)
    return await send(port, "/datasets", UPLOAD, once(data), len(data))


async def big_upload(port: int, size: int, with_length: bool) -> tuple[int, float, int]:
    head = multipart("", "big.fas").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n>a\n"
    return await send(port, "/datasets", UPLOAD, body_of(size, head), size if with_length else None)


async def message(
    port: int, conversation: str, token: str, size: int, with_length: bool
) -> tuple[int, float, int]:
    path = f"/chat/{conversation}/messages"
    body = body_of(size, b'{"message": "')
    return await send(port, path, JSON, body, size if with_length else None, token)


async def run_cases(port: int) -> list[Outcome]:
    with urllib.request.urlopen(
        urllib.request.Request(
            f"http://127.0.0.1:{port}{API}/chat",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json"},
        )
    ) as response:
        token = response.headers["X-Session-Token"]
        conversation = json.loads(response.read())["id"]

    async def case(name: str, *requests: Awaitable[tuple[int, float, int]]) -> Outcome:
        results = await asyncio.gather(*requests)
        return Outcome(
            name,
            [r[0] for r in results],
            max(r[1] for r in results),
            sum(r[2] for r in results) / MB,
        )

    cases = [
        lambda: case("PHYLIP `1000000 4`, 26 bytes", upload(port, PHYLIP_MILLION, "a.phy")),
        lambda: case("PHYLIP `999999999 999999999`", upload(port, PHYLIP_HUGE, "b.phy")),
        lambda: case("NEXUS `DIMENSIONS nchar=999999999`", upload(port, NEXUS_NCHAR, "c.nex")),
        lambda: case("Newick tree 10,000 levels deep", upload(port, DEEP_TREE, "d.nwk")),
        lambda: case("NEXUS with a tree 10,000 levels deep", upload(port, DEEP_NEXUS, "e.nex")),
        lambda: case(
            "10 lying PHYLIP uploads at once, one address",
            *(upload(port, PHYLIP_HUGE, f"f{i}.phy") for i in range(10)),
        ),
        lambda: case(
            "200 MB message with Content-Length",
            message(port, conversation, token, 200 * MB, True),
        ),
        lambda: case(
            "200 MB message, chunked", message(port, conversation, token, 200 * MB, False)
        ),
        lambda: case(
            "4 x 150 MB messages at once, chunked",
            *(message(port, conversation, token, 150 * MB, False) for _ in range(4)),
        ),
        lambda: case(
            "4 x 150 MB messages at once, with Content-Length",
            *(message(port, conversation, token, 150 * MB, True) for _ in range(4)),
        ),
        lambda: case("300 MB upload with Content-Length", big_upload(port, 300 * MB, True)),
        lambda: case("300 MB upload, chunked", big_upload(port, 300 * MB, False)),
        lambda: case(
            "10 MB JSON to create a conversation, chunked",
            send(port, "/chat", JSON, body_of(10 * MB, b'{"title": "'), None),
        ),
    ]
    outcomes = []
    for make in cases:
        outcomes.append(await asyncio.wait_for(make(), CASE_TIMEOUT * 2))
    return outcomes


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp,
        server(Path(tmp)) as (
            pid,
            port,
        ),
    ):
        time.sleep(1)  # let start-up settle
        rss_before = status_kb(pid, "VmRSS")
        with ChildrenPeak(pid) as children:
            outcomes = asyncio.run(run_cases(port))
        hwm = status_kb(pid, "VmHWM")
        rss_after = status_kb(pid, "VmRSS")
        alive = urllib.request.urlopen(f"http://127.0.0.1:{port}{API}/methods", timeout=10).status

    print("| case | status | answered after | sent before the answer | target |")
    print("|---|---|--:|--:|---|")
    for o in outcomes:
        statuses = ", ".join(f"{s} x{o.statuses.count(s)}" for s in sorted(set(o.statuses)))
        ok = "ok" if o.seconds <= TARGET_SECONDS and 0 not in o.statuses else "**missed**"
        print(f"| {o.case} | {statuses} | {o.seconds:.3f} s | {o.sent_mb:.1f} MB | {ok} |")
    growth_mb = (hwm - rss_before) / 1024
    print()
    print(
        f"Server: {rss_before / 1024:.0f} MB resident before the first case, peak (VmHWM) "
        f"{hwm / 1024:.0f} MB, {rss_after / 1024:.0f} MB after: growth {growth_mb:.0f} MB "
        f"({'ok' if growth_mb < TARGET_GROWTH_MB else '**missed**'}, target < "
        f"{TARGET_GROWTH_MB:.0f} MB). Its child processes (parse workers and their fork "
        f"server): {children.baseline_kb / 1024:.0f} MB before, peak {children.peak_kb / 1024:.0f}"
        f" MB. Still answering afterwards: {alive}."
    )


if __name__ == "__main__":
    main()
