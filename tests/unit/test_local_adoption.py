"""What a server finds in a job directory a dead server left: the local executor collects
a run that ended (its exit code written) and reports nothing to follow otherwise."""

from __future__ import annotations

import json
from pathlib import Path

from datamonkey_chat.analyses.hyphy import LocalHyPhyExecutor, write_exit_code


async def test_a_finished_run_is_collected_and_an_interrupted_one_is_not(tmp_path: Path) -> None:
    executor = LocalHyPhyExecutor(jobs_dir=tmp_path, binary=Path("/bin/true"))
    done, failed, interrupted = (tmp_path / name for name in ("done", "failed", "cut"))
    for workdir in (done, failed, interrupted):
        workdir.mkdir()
    (done / "result.json").write_text(json.dumps({"MLE": {"content": {}}}))
    write_exit_code(done, 0)
    (failed / "stdout.log").write_text("Error:\nThe alignment has no sites\n\nmore text")
    write_exit_code(failed, 1)
    (interrupted / "stdout.log").write_text("### Working on site pattern\n")  # no exit code

    collected = await executor.adopt("done", None)
    assert collected is not None
    result = await collected.wait()
    assert (result.status, result.result) == ("completed", {"MLE": {"content": {}}})
    broken = await executor.adopt("failed", None)
    assert broken is not None
    outcome = await broken.wait()
    assert (outcome.status, outcome.error) == ("error", "The alignment has no sites")
    assert await executor.adopt("cut", None) is None  # died with its server: run it again
