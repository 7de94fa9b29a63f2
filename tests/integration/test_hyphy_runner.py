"""The HyPhy runner against the real binary: command line, progress, errors, cancel, limits.

Per-method summaries are tested in test_methods_*.py (through method_harness.py).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from datamonkey_chat.analyses.hyphy import (
    HyPhyJobSpec,
    LocalHyPhyExecutor,
    ProgressParser,
    build_command,
    error_reason,
    find_hyphy_binary,
)
from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.settings import Settings

DATA = Path(__file__).parent.parent / "data" / "hyphy"
INTEGRASE = Path("/usr/share/hyphy/data/integrase_BDA.nex")
PROTEIN = Path("/usr/share/hyphy/data/p51.aa")
BINARY = find_hyphy_binary()

needs_hyphy = pytest.mark.skipif(
    BINARY is None or not INTEGRASE.exists(),
    reason="HyPhy (apt-get install hyphy-pt) and its example data are not installed",
)


# ---------------------------------------------------------------- no HyPhy needed


def test_progress_parser_reads_headings_and_redrawn_counters() -> None:
    parser = ProgressParser()
    assert parser.feed("### Obtaining branch lengths") == ("Obtaining branch lengths", None)
    assert parser.feed("* Log(L) = -2537.12, 3/4 of nothing") is None  # not a counter line
    line = "Working on site pattern 17/181 in partition 1\x1b[2K"
    assert parser.feed(line) == ("Working on site pattern", 0.09)
    assert parser.feed(line) is None  # unchanged: no duplicate callback


def test_error_reason_from_stdout() -> None:
    stdout = "stuff\nError:\nThe input alignment must be codons in call to assert(x);\n\nFunction"
    assert error_reason(stdout) == "The input alignment must be codons"
    assert error_reason("", "Error:Bad file\n") == "Bad file"
    assert error_reason("no problem here") is None


def test_command_line_shape() -> None:
    spec = HyPhyJobSpec("j1", "fel", INTEGRASE, options={"pvalue": 0.05, "srv": True}, cpus=2)
    argv = build_command(Path("/bin/hyphy"), spec, Path("a.nex"), Path("t.nwk"), Path("o.json"))
    assert argv == [
        "/bin/hyphy", "fel", "--alignment", "a.nex", "--tree", "t.nwk",
        "--pvalue", "0.05", "--srv", "Yes", "--output", "o.json", "CPU=2",
    ]  # fmt: skip


def test_binary_discovery_never_uses_the_wrapper(tmp_path: Path) -> None:
    assert BINARY is None or BINARY.parent == Path("/usr/lib/hyphy/bin")
    assert find_hyphy_binary(Settings(hyphy_binary=str(tmp_path / "missing"))) is None


# ---------------------------------------------------------------- real HyPhy


@pytest.mark.hyphy
@needs_hyphy
async def test_fubar_end_to_end(tmp_path: Path) -> None:
    progress: list[tuple[str, float | None]] = []
    executor = LocalHyPhyExecutor(tmp_path)
    spec = HyPhyJobSpec("fubar1", "fubar", INTEGRASE, cpus=2, time_limit_seconds=120)
    result = await executor.run(spec, lambda stage, frac: progress.append((stage, frac)))

    assert result.status == "completed", result.error
    assert result.exit_code == 0 and result.result is not None
    assert (tmp_path / "fubar1" / "result.json").exists()
    stages = [s for s, _ in progress]
    assert any("Computing the phylogenetic likelihood function on the grid" in s for s in stages)

    # the method module's summary against this test's own reading of the JSON
    data = result.result
    headers = [h[0] for h in data["MLE"]["headers"]]
    rows = data["MLE"]["content"]["0"]
    pos, neg = headers.index("Prob[alpha<beta]"), headers.index("Prob[alpha>beta]")
    fubar = registry()["fubar"]
    summary = fubar.summarize(data, fubar.options({})).model_dump()
    assert summary["tested_sites"] == len(rows) == 288
    assert summary["positive_count"] == sum(r[pos] >= 0.9 for r in rows)
    assert summary["negative_count"] == sum(r[neg] >= 0.9 and r[pos] < 0.9 for r in rows)
    assert summary["negative_count"] > 0


@pytest.mark.hyphy
@needs_hyphy
async def test_protein_to_fel_fails_with_hyphy_reason(tmp_path: Path) -> None:
    executor = LocalHyPhyExecutor(tmp_path)
    result = await executor.run(HyPhyJobSpec("bad1", "fel", PROTEIN, time_limit_seconds=60))
    assert result.status == "error" and result.exit_code != 0
    assert result.error is not None
    assert "divisible by 3 and must not contain stop codons" in result.error
    assert "in call to" not in result.error


@pytest.mark.hyphy
@needs_hyphy
async def test_cancel_kills_the_process_group(tmp_path: Path) -> None:
    started = asyncio.Event()
    executor = LocalHyPhyExecutor(tmp_path)
    spec = HyPhyJobSpec("cancel1", "fel", INTEGRASE, time_limit_seconds=120)
    job = await executor.start(spec, lambda _s, _f: started.set())
    await asyncio.wait_for(started.wait(), 30)
    pid = job._process.pid if job._process else -1
    assert await executor.cancel("cancel1")
    result = await asyncio.wait_for(job.wait(), 10)
    assert result.status == "cancelled" and result.result is None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # the whole group is gone
    assert not await executor.cancel("cancel1")  # forgotten once finished


@pytest.mark.hyphy
@needs_hyphy
async def test_time_limit_stops_the_job(tmp_path: Path) -> None:
    executor = LocalHyPhyExecutor(tmp_path, default_time_limit=1.5)
    result = await asyncio.wait_for(executor.run(HyPhyJobSpec("slow1", "fel", INTEGRASE)), 20)
    assert result.status == "timeout" and "1.5 s" in (result.error or "")
    assert result.duration_seconds < 10
