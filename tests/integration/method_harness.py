"""Run one method on real HyPhy exactly as the server prepares it, for per-method tests.

`run_method` validates the files as an upload is validated, checks the options and the data
as a job start does, writes HyPhy's inputs with `analyses.runs.plan_run`, runs HyPhy with the
local executor and reads the result with `analyses.runs.read_result`. Tests then compare the
summary's headline numbers with their own reading of `run.data` (HyPhy's JSON, names restored).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datamonkey_chat.analyses.hyphy import HyPhyJobSpec, LocalHyPhyExecutor, find_hyphy_binary
from datamonkey_chat.analyses.inputs import HyPhyInputs
from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.methods.base import MethodOptions, PlotSpec, Summary, Table
from datamonkey_chat.analyses.runs import method_options, plan_run, read_result, run_problems
from datamonkey_chat.analyses.validation import validate_alignment, validate_tree

HYPHY_DATA = Path("/usr/share/hyphy/data")
INTEGRASE = HYPHY_DATA / "integrase_BDA.nex"  # 11 sequences x 288 codons, with a tree
HYPHY_AVAILABLE = find_hyphy_binary() is not None and INTEGRASE.exists()


@dataclass
class MethodRun:
    data: dict[str, Any]  # HyPhy's JSON, the user's names restored
    raw: dict[str, Any]  # as HyPhy wrote it (safe ids)
    summary: Summary
    plots: list[PlotSpec]
    table: Table
    options: MethodOptions
    inputs: HyPhyInputs
    workdir: Path  # HyPhy's job directory (its other output files are there)
    seconds: float


def codon_subset(source: Path, codons: int, target: Path) -> Path:
    """The first `codons` codons of a FASTA/NEXUS alignment as FASTA (no tree): a small input."""
    from datamonkey_chat.analyses.validation import alignment_records

    records = alignment_records(source.read_text())
    target.write_text("".join(f">{n}\n{s[: 3 * codons]}\n" for n, s in records))
    return target


async def run_method(
    method_id: str,
    alignment: Path | None,
    workdir: Path,
    tree: Path | None = None,
    options: dict[str, Any] | None = None,
    genetic_code: str = "Universal",
    time_limit_seconds: float = 600,
) -> MethodRun:
    """`alignment` None: a method that reads only a tree runs on `tree` alone."""
    method = registry()[method_id]
    checked = method_options(method, options or {})
    code = getattr(checked, "genetic_code", genetic_code)
    alignment_text = alignment.read_text() if alignment is not None else None
    report = validate_alignment(alignment_text, code) if alignment_text is not None else None
    assert report is None or report.ok, report.problems
    tree_report = validate_tree(tree.read_text()) if tree is not None else None
    assert tree_report is None or tree_report.ok, tree_report.problems
    problems = run_problems(method, checked, report, tree_report)
    assert not problems, problems
    planned = plan_run(method, checked, alignment_text, report, tree_report)
    staging = workdir / "inputs"
    staging.mkdir(parents=True, exist_ok=True)
    alignment_file = None
    if planned.inputs.alignment_text is not None:
        alignment_file = staging / planned.inputs.alignment_name
        alignment_file.write_text(planned.inputs.alignment_text)
    tree_file = None
    if planned.inputs.tree_text is not None:
        tree_file = staging / "tree.nwk"
        tree_file.write_text(planned.inputs.tree_text)
    executor = LocalHyPhyExecutor(jobs_dir=workdir / "jobs", use_pty=False)
    job_id = "t" + secrets.token_hex(6)
    started = time.monotonic()
    result = await executor.run(
        HyPhyJobSpec(
            job_id=job_id,
            method=method.keyword,
            alignment=alignment_file,
            tree=tree_file,
            options=planned.arguments,
            cpus=2,
            time_limit_seconds=time_limit_seconds,
        )
    )
    seconds = time.monotonic() - started
    assert result.status == "completed" and result.result is not None, (
        result.status,
        result.error,
        result.stdout_tail[-2000:],
    )
    read = read_result(method, checked, result.result, planned.inputs.names)
    return MethodRun(
        data=read.data,
        raw=result.result,
        summary=read.summary,
        plots=read.plots,
        table=method.table(read.data, checked),
        options=checked,
        inputs=planned.inputs,
        workdir=result.workdir or workdir,
        seconds=seconds,
    )
