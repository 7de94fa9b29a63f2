"""Integration fixtures: the scripted OpenAI-compatible server as a separate process."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_OPENAI_SERVER = Path(__file__).with_name("fake_openai_server.py")
START_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class FakeOpenAIServer:
    port: int

    @property
    def base_url(self) -> str:
        """What DATAMONKEY_CHAT_OPENAI_BASE_URL is set to."""
        return f"http://127.0.0.1:{self.port}/v1"

    def last_request(self) -> dict[str, Any]:
        """The body of the last /v1/chat/completions request the server received."""
        with urllib.request.urlopen(f"{self.base_url}/_last_request", timeout=5) as response:
            body: dict[str, Any] = json.load(response)
        return body


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAIServer]:
    """Start fake_openai_server.py on a free port for the session; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, str(FAKE_OPENAI_SERVER), "--port", "0"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_SECONDS)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"fake OpenAI server did not start (got {line!r})")
        yield FakeOpenAIServer(port=int(line.split()[1]))
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
