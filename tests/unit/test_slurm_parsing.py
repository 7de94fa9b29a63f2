"""What the Slurm executor reads from and writes for Slurm's commands (no Slurm needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from datamonkey_chat.analyses.slurm import (
    batch_script,
    parse_scontrol,
    parse_state,
    split_extra_args,
    time_limit_minutes,
)

SCONTROL = (
    "JobId=42 JobName=dmc-abc UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
    "Dependency=(null) ExitCode=3:0 RunTime=00:00:03 WorkDir=/jobs/abc Power= "
)


def test_scontrol_line_gives_state_reason_and_exit_code() -> None:
    fields = parse_scontrol(SCONTROL)
    assert (fields["JobId"], fields["JobName"], fields["Power"]) == ("42", "dmc-abc", "")
    state = parse_state(fields)
    assert (state.state, state.reason, state.exit_code, state.active) == (
        "FAILED",
        "NonZeroExitCode",
        3,
        False,
    )
    pending = parse_state(parse_scontrol("JobState=PENDING Reason=BeginTime ExitCode=0:0"))
    assert pending.active and pending.reason == "BeginTime"
    cancelled = parse_state(parse_scontrol("JobState=CANCELLED+ ExitCode=0:15"))
    assert cancelled.state == "CANCELLED" and not cancelled.active


def test_the_batch_script_runs_hyphy_in_its_directory_and_records_the_exit_code(
    tmp_path: Path,
) -> None:
    workdir = tmp_path / "job dir; with 'quotes'"  # quoted, never interpreted
    workdir.mkdir()
    script = workdir / "job.sh"
    script.write_text(batch_script(workdir, ["sh", "-c", "echo out; echo err >&2; exit 7", "x"]))
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 7 and done.stdout == ""
    assert (workdir / "stdout.log").read_text() == "out\nerr\n"
    assert (workdir / "exit_code").read_text() == "7\n"


def test_time_limits_and_extra_arguments() -> None:
    assert time_limit_minutes(3600) == "60"
    assert time_limit_minutes(61) == "2"  # rounded up: never shorter than asked
    assert time_limit_minutes(None) is None
    assert split_extra_args("--qos=long --comment='two words'") == [
        "--qos=long",
        "--comment=two words",
    ]
