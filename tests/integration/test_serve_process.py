"""`datamonkey-chat serve` as a process: a SIGTERM (docker stop, systemd) ends it cleanly."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

from tests.live_server import HEALTH_PATH, run_server


def test_sigterm_shuts_down_and_keeps_the_last_log_lines(tmp_path: Path) -> None:
    with run_server(tmp_path / "server") as server:
        with urllib.request.urlopen(server.url + HEALTH_PATH, timeout=10) as response:
            assert response.status == 200
        server.process.send_signal(signal.SIGTERM)
        returncode = server.process.wait(timeout=30)
        log = server.log()

    assert returncode == 128 + signal.SIGTERM, log  # left through Python, not killed
    assert f"GET {HEALTH_PATH} 200" in log
    assert "Application shutdown complete" in log
    assert "Finished server process" in log
