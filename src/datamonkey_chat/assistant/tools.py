"""The assistant's tools: the method catalog here, analyses in analysis_tools.py.

Every model (LLM or the offline assistant) gets the same toolsets; other packages add
theirs through `build_toolsets(extra=...)`. Tools read who is asking from
`ctx.deps` (AssistantDeps), never from anything the model wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_ai import RunContext
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset

from datamonkey_chat.assistant.analysis_tools import analysis_toolset
from datamonkey_chat.assistant.base import AssistantDeps
from datamonkey_chat.catalog import load_catalog

__all__ = ["build_toolsets", "catalog_toolset", "describe_method", "list_methods"]


# The catalog tools are async though they never wait: Pydantic AI runs a sync tool in a
# worker thread, and that hop (the GIL handed over and back) cost more than the lookup.


async def list_methods(ctx: RunContext[AssistantDeps]) -> list[dict[str, Any]]:
    """List the HyPhy methods Datamonkey offers: id, name, one-line summary, the kinds of
    selection each detects, the input it needs, and whether this server can run it."""
    return [method.brief() for method in load_catalog().methods]


async def describe_method(ctx: RunContext[AssistantDeps], name: str) -> dict[str, Any]:
    """Everything the catalog knows about one method: the question it answers, required
    input, typical run time, options with defaults, how to read its results and the paper
    to cite.

    Args:
        name: method id, name or alias, e.g. "FEL", "aBSREL", "contrast-fel".
    """
    catalog = load_catalog()
    method = catalog.find(name)
    if method is None:
        return {"error": f"No method named {name!r}. Known methods: {', '.join(catalog.ids())}."}
    return method.model_dump(mode="json")


def catalog_toolset() -> FunctionToolset[AssistantDeps]:
    return FunctionToolset[AssistantDeps]([list_methods, describe_method], id="catalog")


def build_toolsets(
    extra: Sequence[AbstractToolset[AssistantDeps]] = (),
    *,
    include_analyses: bool = True,
) -> list[AbstractToolset[AssistantDeps]]:
    """The toolsets every assistant gets: catalog, analyses (unless disabled), then `extra`."""
    toolsets: list[AbstractToolset[AssistantDeps]] = [catalog_toolset()]
    if include_analyses:
        toolsets.append(analysis_toolset())
    toolsets.extend(extra)
    return toolsets
