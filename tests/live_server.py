"""A real `datamonkey-chat serve` process on a free port, for tests that need a live server.

Use the session-scoped fixture from any test module (contract tests, browser tests):

    from tests.live_server import live_server  # noqa: F401  (a fixture)

    def test_something(live_server: str) -> None:
        api = live_server + API_PREFIX           # e.g. http://127.0.0.1:43127/api/v1

`live_server` yields the server's root URL (no trailing slash). The server gets a fresh data
directory (a throwaway SQLite database and signing secret), none of the developer's
`DATAMONKEY_CHAT_*` environment, and no `.env` (it runs in that directory), so it always uses
the offline assistant. For other settings, use `run_server()` directly.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

API_PREFIX = "/api/v1"
HEALTH_PATH = f"{API_PREFIX}/health"
ENV_PREFIX = "DATAMONKEY_CHAT_"


@dataclass(frozen=True)
class LiveServer:
    url: str  # root URL, e.g. http://127.0.0.1:43127
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_command(port: int, extra_args: Sequence[str] = ()) -> list[str]:
    """The installed console script next to this interpreter (the venv's), else `-m`."""
    script = shutil.which("datamonkey-chat", path=str(Path(sys.executable).parent))
    base = [script] if script else [sys.executable, "-m", "datamonkey_chat"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port), *extra_args]


def server_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env[ENV_PREFIX + "DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 503 "unhealthy" is still an answer: the server is up
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextmanager
def run_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 60.0,
    attempts: int = 3,
    extra_args: Sequence[str] = (),
) -> Iterator[LiveServer]:
    """Start the server, wait until /api/v1/health answers, yield it, terminate it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    failure = ""
    for _ in range(attempts):  # another process may take the free port before we bind it
        port = free_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                serve_command(port, extra_args),
                cwd=data_dir,
                env=server_env(data_dir, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(f"http://127.0.0.1:{port}", data_dir, log_path, process)
        try:
            deadline = time.monotonic() + startup_timeout
            while process.poll() is None and time.monotonic() < deadline:
                if _answers(server.url + HEALTH_PATH):
                    break
                time.sleep(0.1)
            else:
                failure = (
                    f"exited with {process.returncode}"
                    if process.poll() is not None
                    else f"did not answer within {startup_timeout:.0f}s"
                )
                continue
            yield server
            return
        finally:
            _stop(process)
    raise RuntimeError(f"datamonkey-chat serve {failure}; its log:\n{server.log()}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The root URL of a live server shared by the whole test session.

    Its rate limits are off: whole suites (schemathesis, the browser tests) drive it from one
    address and a few sessions, far faster than people do; tests/api/test_rate_limits.py
    tests the limits themselves."""
    no_limits = {"DATAMONKEY_CHAT_RATE_LIMITS": "false"}
    with run_server(tmp_path_factory.mktemp("live-server"), env=no_limits) as server:
        yield server.url


@contextmanager
def run_servers(
    data_dirs: Sequence[Path], env: Mapping[str, str] | None = None, startup_timeout: float = 90.0
) -> Iterator[list[LiveServer]]:
    """Start one server per data directory all at once (no waiting in between), wait until
    each answers, yield them, terminate them. A server that exits at start fails it."""
    servers: list[LiveServer] = []
    try:
        for data_dir in data_dirs:
            data_dir.mkdir(parents=True, exist_ok=True)
            log_path = data_dir / "server.log"
            port = free_port()
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    serve_command(port),
                    cwd=data_dir,
                    env=server_env(data_dir, env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            servers.append(LiveServer(f"http://127.0.0.1:{port}", data_dir, log_path, process))
        deadline = time.monotonic() + startup_timeout
        for server in servers:
            while not _answers(server.url + HEALTH_PATH):
                if server.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a server did not start; its log:\n{server.log()}")
                time.sleep(0.1)
        yield servers
    finally:
        for server in servers:
            _stop(server.process)
