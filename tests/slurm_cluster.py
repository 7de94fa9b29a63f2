"""A throwaway single-node Slurm cluster for the tests (scripts/slurm-up / slurm-down).

    from tests.slurm_cluster import slurm_cluster  # noqa: F401  (a fixture)

    def test_something(slurm_cluster: SlurmCluster) -> None:
        env = slurm_cluster.env                 # {"SLURM_CONF": ...} for a server process

The cluster is brought up once per test session in a fresh directory and torn down at the
end (its jobs cancelled, its daemons stopped). It needs root and Debian's `slurmctld
slurmd slurm-client munge` (scripts/setup --system installs them); without them the tests
that use it are skipped, except in CI, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
NEEDED = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")


@dataclass(frozen=True)
class SlurmCluster:
    directory: Path

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *argv: str) -> str:
        """Run a Slurm client command against this cluster; its stdout."""
        done = subprocess.run(
            argv,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def state_of(self, job_name: str) -> str | None:
        """The Slurm state of the (last) job with this name, None if Slurm never saw it."""
        out = self.command("squeue", "--noheader", "--states=all", f"--name={job_name}", "-o", "%T")
        states = out.split()
        return states[-1] if states else None

    def finished_jobs(self, job_name: str) -> list[str]:
        """Slurm's record of every finished job with this name (jobcomp/filetxt lines)."""
        log = self.directory / "log" / "jobcomp.txt"
        lines = log.read_text().splitlines() if log.exists() else []
        return [line for line in lines if f" Name={job_name} " in line]


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the test Slurm cluster needs root"
    absent = [cmd for cmd in NEEDED if shutil.which(cmd) is None]
    if absent:
        return f"Slurm is not installed ({', '.join(absent)}): scripts/setup --system"
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            raise RuntimeError(reason)
        pytest.skip(reason)
    # Not under pytest's tmp dir: munged (a user of its own) must reach its socket there.
    directory = Path(tempfile.mkdtemp(prefix="dmc-slurm-"))
    directory.chmod(0o755)
    try:
        subprocess.run(
            [str(SCRIPTS / "slurm-up"), str(directory)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.CalledProcessError as exc:
        subprocess.run([str(SCRIPTS / "slurm-down"), str(directory)], timeout=60)
        raise RuntimeError(f"scripts/slurm-up failed:\n{exc.stdout}\n{exc.stderr}") from None
    try:
        yield SlurmCluster(directory)
    finally:
        subprocess.run([str(SCRIPTS / "slurm-down"), str(directory)], timeout=60)
        shutil.rmtree(directory, ignore_errors=True)
