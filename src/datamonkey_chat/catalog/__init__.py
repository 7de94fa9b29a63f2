"""The curated catalog of HyPhy methods Datamonkey offers, read from methods.json.

The facts live in the data file, not in code, so the offline assistant, the LLM tools
and the REST API all serve the same, reviewable text.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

__all__ = [
    "Catalog",
    "MethodInfo",
    "UpstreamMethod",
    "load_catalog",
    "load_upstream_methods",
    "normalize_name",
]


class MethodInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    full_name: str
    aliases: list[str]
    summary: str
    question: str
    selection_types: list[str]
    inputs: list[str]
    run_time: str
    results: str
    citation: str
    hyphy_keyword: str | None
    runnable: bool
    note: str | None = None

    def brief(self) -> dict[str, Any]:
        """The short form used when listing methods."""
        return {
            "id": self.id,
            "name": self.name,
            "summary": self.summary,
            "selection_types": self.selection_types,
            "inputs": self.inputs,
            "runnable": self.runnable,
        }


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: int
    hyphy_version: str
    methods: list[MethodInfo]
    _index: dict[str, MethodInfo] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for method in self.methods:
            for label in (method.id, method.name, *method.aliases):
                self._index.setdefault(normalize_name(label), method)

    def find(self, name_or_alias: str) -> MethodInfo | None:
        """The method whose id, name or alias matches, ignoring case and punctuation."""
        return self._index.get(normalize_name(name_or_alias))

    def ids(self) -> list[str]:
        return [m.id for m in self.methods]


def normalize_name(text: str) -> str:
    """'a-BSREL', 'aBSREL' and 'a bsrel' all become 'absrel'."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


@cache
def load_catalog() -> Catalog:
    """Parse methods.json once per process (it ships inside the package)."""
    text = resources.files(__name__).joinpath("methods.json").read_text(encoding="utf-8")
    return Catalog.model_validate_json(text)


class UpstreamMethod(BaseModel):
    """Upstream Datamonkey API 1.2.0's names for one method's operations."""

    model_config = ConfigDict(frozen=True)

    path: str  # /methods/{path}-start
    tag: str
    start_operation: str
    request_schema: str
    result_operation: str
    result_schema: str
    result_by_request_operation: str


class _UpstreamMethods(BaseModel):
    methods: dict[str, UpstreamMethod]


@cache
def load_upstream_methods() -> dict[str, UpstreamMethod]:
    """Catalog id -> upstream's operation names (upstream_methods.json)."""
    text = resources.files(__name__).joinpath("upstream_methods.json").read_text("utf-8")
    return _UpstreamMethods.model_validate_json(text).methods
