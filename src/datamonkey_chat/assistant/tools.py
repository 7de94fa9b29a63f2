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

from datamonkey_chat.analyses.methods import option_list, options_schema, registry
from datamonkey_chat.assistant.analysis_tools import analysis_toolset
from datamonkey_chat.assistant.base import AssistantDeps
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.catalog.knowledge import load_glossary

__all__ = [
    "build_toolsets",
    "catalog_toolset",
    "describe_method",
    "explain_term",
    "list_methods",
]


# The catalog tools are async though they never wait: Pydantic AI runs a sync tool in a
# worker thread, and that hop (the GIL handed over and back) cost more than the lookup.


async def list_methods(ctx: RunContext[AssistantDeps]) -> list[dict[str, Any]]:
    """List the HyPhy methods Datamonkey offers: id, name, one-line summary, the kinds of
    selection each detects, the input it needs, and whether this server can run it."""
    return [method.brief() for method in load_catalog().methods]


async def describe_method(ctx: RunContext[AssistantDeps], name: str) -> dict[str, Any]:
    """Everything the catalog knows about one method: the question it answers, required
    input, typical run time, how to read its results, the paper to cite, and its options
    with defaults and ranges (`options_schema` is the JSON schema that start_analysis's
    `options` must follow).

    Args:
        name: method id, name or alias, e.g. "FEL", "aBSREL", "contrast-fel".
    """
    catalog = load_catalog()
    method = catalog.find(name)
    if method is None:
        return {"error": f"No method named {name!r}. Known methods: {', '.join(catalog.ids())}."}
    described = method.model_dump(mode="json", exclude={"options"})
    module = registry().get(method.id)
    described["options"] = option_list(module) if module else []
    described["options_schema"] = options_schema(module) if module else None
    return described


async def explain_term(ctx: RunContext[AssistantDeps], term: str) -> dict[str, Any]:
    """A curated explanation of a concept from Datamonkey's glossary: dN/dS and omega,
    pervasive vs episodic selection, synonymous rate variation, multiple hits, branch-site
    models, recombination, thresholds, branch sets, HyPhy, the genetic codes offered.

    Args:
        term: the concept in a few words, or a glossary id, e.g. "dN/dS", "episodic".
    """
    glossary = load_glossary()
    wanted = term.strip().lower()
    found = [t for t in glossary.terms if t.id == wanted] or glossary.find(wanted)
    if not found:
        known = ", ".join(t.title for t in glossary.terms)
        return {"error": f"No glossary entry for {term!r}. Entries: {known}."}
    return found[0].model_dump(mode="json", exclude={"phrases"})


def catalog_toolset() -> FunctionToolset[AssistantDeps]:
    return FunctionToolset[AssistantDeps](
        [list_methods, describe_method, explain_term], id="catalog"
    )


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
