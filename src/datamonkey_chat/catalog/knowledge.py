"""What the offline assistant knows besides the methods, as validated data files.

- glossary.json: concepts a biologist asks about (dN/dS, episodic selection, HyPhy...).
- intents.json: concepts (regular expressions), rules over them (first match wins) and the
  example phrasings every rule is tested with.
- option_words.json: plain words for method options, keyed by option field name.

Like methods.json, the files are checked when loaded: patterns compile, rules name known
concepts, glossary entries and selection types name catalog methods and types.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datamonkey_chat.catalog import load_catalog

__all__ = [
    "BUILTIN_CONCEPTS",
    "Example",
    "Glossary",
    "GlossaryTerm",
    "IntentRule",
    "Intents",
    "OptionPhrase",
    "OptionWords",
    "load_glossary",
    "load_intents",
    "load_option_words",
]

# concepts computed in code (offline.py), not by a pattern
BUILTIN_CONCEPTS = frozenset(
    {"method", "recalled_method", "pasted_alignment", "glossary_term", "selection_term", "job_id"}
)


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


class GlossaryTerm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    phrases: list[str]
    text: str
    methods: list[str]

    @model_validator(mode="after")
    def _check(self) -> GlossaryTerm:
        for phrase in self.phrases:
            _compiles(phrase)
        known = set(load_catalog().ids())
        unknown = [m for m in self.methods if m not in known]
        if unknown:
            raise ValueError(f"glossary term {self.id!r} names unknown methods {unknown}")
        return self

    def matches(self, text: str) -> bool:
        return any(re.search(phrase, text) for phrase in self.phrases)


class Glossary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    terms: list[GlossaryTerm]

    def find(self, text: str) -> list[GlossaryTerm]:
        return [term for term in self.terms if term.matches(text)]

    def get(self, term_id: str) -> GlossaryTerm:
        return next(term for term in self.terms if term.id == term_id)


class Example(BaseModel):
    """One phrasing and what must happen when a user types it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    say: str
    earlier: list[str] = Field(default_factory=list)
    start: list[dict[str, Any]] = Field(default_factory=list)  # exact start_analysis args
    cancel: str | None = None
    reply_has: list[str] = Field(default_factory=list)


class IntentRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    all: list[str] = Field(default_factory=list)
    any: list[str] = Field(default_factory=list)
    none: list[str] = Field(default_factory=list)
    reply: str | None = None  # a fixed answer about the assistant itself
    examples: list[Example]

    def concepts(self) -> set[str]:
        return {*self.all, *self.any, *self.none}

    def holds(self, present: set[str]) -> bool:
        return (
            all(c in present for c in self.all)
            and (not self.any or any(c in present for c in self.any))
            and not any(c in present for c in self.none)
        )


class SelectionTerm(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: str
    types: list[str]


class Intents(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    about: str = ""
    concepts: dict[str, str]
    selection_terms: list[SelectionTerm]
    intents: list[IntentRule]

    @model_validator(mode="after")
    def _check(self) -> Intents:
        clash = BUILTIN_CONCEPTS & set(self.concepts)
        if clash:
            raise ValueError(f"concepts {sorted(clash)} are built in")
        for pattern in [*self.concepts.values(), *(t.pattern for t in self.selection_terms)]:
            _compiles(pattern)
        known = BUILTIN_CONCEPTS | set(self.concepts)
        for rule in self.intents:
            unknown = rule.concepts() - known
            if unknown:
                raise ValueError(f"intent {rule.id!r} uses unknown concepts {sorted(unknown)}")
        types = {t for m in load_catalog().methods for t in m.selection_types}
        for term in self.selection_terms:
            missing = set(term.types) - types
            if missing:
                raise ValueError(f"selection term {term.pattern!r}: no method has {missing}")
        if self.intents and self.intents[-1].concepts():
            raise ValueError("the last intent must be the unconditional fallback")
        return self

    def first_match(self, present: set[str]) -> IntentRule:
        return next(rule for rule in self.intents if rule.holds(present))


MACROS = {
    "number": r"\d*\.\d+(?:e-?\d+)?|\d+(?:e-?\d+)?",
    "integer": r"\d+",
    # a branch label, braces optional; not an everyday word that precedes "branches"
    "label": r"(?!(?:the|all|my|these|those|some|internal|leaf|leaves|terminal|tip|tips|"
    r"external|branch|branches|on|with|and|of)\b)[A-Za-z][\w-]*",
    "name": r"[\w.-]*\w",
}
_MACRO = re.compile(r"<(number|integer|label|name):(\w+)>")


def expand_macros(pattern: str) -> str:
    def group(match: re.Match[str]) -> str:
        kind, name = match.groups()
        body = f"(?P<{name}>{MACROS[kind]})"
        return rf"\{{?{body}\}}?" if kind == "label" else body

    return _MACRO.sub(group, pattern)


class OptionPhrase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    says: str
    pattern: str
    apply: list[dict[str, Any]]

    @model_validator(mode="after")
    def _check(self) -> OptionPhrase:
        compiled = re.compile(expand_macros(self.pattern), re.IGNORECASE)
        groups = set(compiled.groupindex)
        for alternative in self.apply:
            used = set(re.findall(r"\{(\w+)\}", json.dumps(alternative)))
            if used - groups:
                raise ValueError(f"{self.says!r}: {sorted(used - groups)} are not captured")
        if not self.apply:
            raise ValueError(f"{self.says!r} applies to no option")
        return self

    def regex(self) -> re.Pattern[str]:
        return re.compile(expand_macros(self.pattern), re.IGNORECASE)


class OptionWords(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    about: str = ""
    phrases: list[OptionPhrase]
    filler: list[str]


def _read(name: str) -> str:
    return (
        resources.files(__package__ or "datamonkey_chat.catalog")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )


@cache
def load_glossary() -> Glossary:
    return Glossary.model_validate_json(_read("glossary.json"))


@cache
def load_intents() -> Intents:
    return Intents.model_validate_json(_read("intents.json"))


@cache
def load_option_words() -> OptionWords:
    return OptionWords.model_validate_json(_read("option_words.json"))
