"""Analysis tools: datasets and HyPhy jobs, backed by `ctx.deps.analyses`.

The analyses service raises LookupError / ValueError with messages meant for the user;
the tools hand those back as a readable `{"error": ...}` result so the model can explain
them (a ModelRetry would let an LLM burn its retries on a missing dataset). The user is
always `ctx.deps.user_id`: no tool takes a user id from the model.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.toolsets import FunctionToolset

from datamonkey_chat.assistant.base import AssistantDeps
from datamonkey_chat.assistant.ports import AnalysesPort
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.domain.text import require_storable_json

__all__ = [
    "NOT_AVAILABLE",
    "analysis_toolset",
    "extract_alignment",
]

NOT_AVAILABLE = "Analyses are not available on this server (no analyses service is configured)."

ToolResult = dict[str, Any] | list[Any]


def _readable(exc: Exception) -> str:
    # str(KeyError("x")) is "'x'": prefer the message itself
    return str(exc.args[0]) if exc.args else type(exc).__name__


Call = Callable[[AnalysesPort, str], Awaitable[ToolResult]]


async def _call(ctx: RunContext[AssistantDeps], call: Call, *arguments: Any) -> ToolResult:
    """`call(service, user_id)`, with the service's user-meant errors as a readable result;
    `arguments` are what the model wrote for it, checked to be storable text first."""
    service = ctx.deps.analyses
    if service is None:
        return {"error": NOT_AVAILABLE}
    try:
        require_storable_json(list(arguments), "the tool's argument")  # the model's text
        return await call(service, ctx.deps.user_id)
    except (LookupError, ValueError) as exc:
        return {"error": _readable(exc)}


async def list_datasets(ctx: RunContext[AssistantDeps]) -> ToolResult:
    """List the user's uploaded datasets (alignments and trees) with their ids."""
    return await _call(ctx, lambda service, user: service.list_datasets(user))


async def describe_dataset(ctx: RunContext[AssistantDeps], dataset_id: str) -> ToolResult:
    """Details of one dataset: name, type, number of sequences and sites, problems found.

    Args:
        dataset_id: the dataset's id as listed by list_datasets.
    """
    return await _call(ctx, lambda service, user: service.get_dataset(user, dataset_id), dataset_id)


async def save_pasted_alignment(
    ctx: RunContext[AssistantDeps], name: str | None = None
) -> ToolResult:
    """Store the FASTA or NEXUS alignment the user pasted into the current message as a
    dataset, and return its id. Call only when the user's message contains an alignment.

    Args:
        name: optional dataset name.
    """
    text = extract_alignment(ctx.deps.current_message)
    if text is None:
        return {"error": "No FASTA or NEXUS alignment was found in the message."}
    return await _call(
        ctx, lambda service, user: service.save_alignment_text(user, text, name), name
    )


async def start_analysis(
    ctx: RunContext[AssistantDeps],
    method: str,
    alignment_id: str | None = None,
    tree_id: str | None = None,
    options: dict[str, Any] | None = None,
) -> ToolResult:
    """Start a HyPhy analysis on one of the user's datasets. Only call this when the user
    asked to run an analysis; returns the job id and status.

    Args:
        method: method id or name from list_methods, e.g. "fel", "absrel".
        alignment_id: id of the alignment dataset; omit only for Slatkin-Maddison, which
            can run on a tree alone (then give tree_id).
        tree_id: id of a tree dataset (or of a NEXUS alignment with its own tree); omit to
            use the alignment's own tree, or a neighbour-joining tree built for the job.
        options: the method's options, following describe_method's `options_schema`,
            e.g. {"pvalue": 0.05, "genetic_code": "Vertebrate mtDNA", "branches": ["TEST"]}.
    """
    catalog = load_catalog()
    info = catalog.find(method)
    if info is None:
        return {"error": f"No method named {method!r}. Known methods: {', '.join(catalog.ids())}."}
    if not info.runnable:
        return {"error": f"{info.name} cannot be run on this server. {info.note or ''}".strip()}
    return await _call(
        ctx,
        lambda service, user: service.start_job(
            user, info.id, alignment_id, tree_id, options or {}
        ),
        method,
        alignment_id,
        tree_id,
        options,
    )


async def job_status(ctx: RunContext[AssistantDeps], job_id: str | None = None) -> ToolResult:
    """Status and progress of a job (queued, running, completed, error).

    Args:
        job_id: the job's id; omit for the user's most recent job.
    """
    return await _call(ctx, lambda service, user: service.get_job(user, job_id), job_id)


async def job_results(ctx: RunContext[AssistantDeps], job_id: str | None = None) -> ToolResult:
    """A plain-language summary of a finished job's results, computed from HyPhy's output.

    Args:
        job_id: the job's id; omit for the user's most recent job.
    """
    return await _call(ctx, lambda service, user: service.job_summary(user, job_id), job_id)


async def cancel_job(ctx: RunContext[AssistantDeps], job_id: str) -> ToolResult:
    """Cancel a queued or running job. Only call this when the user asked to cancel.

    Args:
        job_id: the job's id.
    """
    return await _call(ctx, lambda service, user: service.cancel_job(user, job_id), job_id)


async def list_jobs(ctx: RunContext[AssistantDeps]) -> ToolResult:
    """List the user's analysis jobs with method, dataset, status and creation time."""
    return await _call(ctx, lambda service, user: service.list_jobs(user))


def analysis_toolset() -> FunctionToolset[AssistantDeps]:
    toolset = FunctionToolset[AssistantDeps](id="analyses")
    for tool in (
        list_datasets,
        describe_dataset,
        save_pasted_alignment,
        start_analysis,
        job_status,
        job_results,
        cancel_job,
        list_jobs,
    ):
        toolset.add_function(tool)
    return toolset


_SEQUENCE_LINE = re.compile(r"^[A-Za-z\-?.*~]+$")
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def extract_alignment(message: str) -> str | None:
    """The FASTA or NEXUS alignment pasted in `message` (fenced or not), or None."""
    for block in [*_FENCE.findall(message), message]:
        found = _extract_nexus(block) or _extract_fasta(block)
        if found:
            return found
    return None


def _extract_nexus(text: str) -> str | None:
    start = text.upper().find("#NEXUS")
    if start < 0 or "MATRIX" not in text.upper()[start:]:
        return None
    body = text[start:]
    end = body.upper().rfind("END;")
    return (body[: end + 4] if end >= 0 else body).strip() + "\n"


def _extract_fasta(text: str) -> str | None:
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(">")]
    if not starts:
        return None
    kept: list[str] = []
    for line in lines[starts[0] :]:
        stripped = line.strip()
        if stripped.startswith(">") or _SEQUENCE_LINE.match(stripped) or not stripped:
            kept.append(stripped)
        else:
            break  # prose after the alignment
    records = sum(1 for line in kept if line.startswith(">"))
    has_sequence = any(line and not line.startswith(">") for line in kept)
    if records < 2 or not has_sequence:
        return None
    return "\n".join(line for line in kept if line) + "\n"
