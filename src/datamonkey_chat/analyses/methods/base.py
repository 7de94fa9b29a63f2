"""What every HyPhy method module provides, and the pieces they share.

A method is one module in this package defining a subclass of `HyPhyMethod`:

- `Options`: a pydantic model with exactly the upstream request's fields (Datamonkey API
  1.2.0, snake_case, every default accepted) plus additive ones; ranges and enums are
  checked there, so a bad value is refused before HyPhy starts.
- `requirements` and `input_problems`: what the data must be (codons, a tree, labels).
- `arguments`: the HyPhy command line (`--flag value` pairs), each option mapped in one place.
- `summarize`: a typed `Summary` computed from HyPhy's JSON, with the threshold stated and
  the caveats a statistician would add.
- `plots`: Vega-Lite specs (plain dicts) built from the summary.
- `table`: one row per site or per branch with every column the method reports.

The registry (`methods/__init__.py`) maps catalog ids to instances and is checked against
the catalog at start-up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from datamonkey_chat.analyses.validation import MethodRequirements, Problem, ValidationReport

OptionValue = str | int | float | bool | list[str]  # a list repeats the flag
PlotSpec = dict[str, Any]  # a Vega-Lite specification
# the page's vega-embed renders Vega-Lite 6 (web/static/vendor/VERSIONS)
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
FEW_SEQUENCES = 20  # below this, site- and branch-level tests have little power


class SummaryError(ValueError):
    """The JSON does not have the shape this method's HyPhy output has."""


# ---------------------------------------------------------------- options


class MethodOptions(BaseModel):
    """Base of every method's options: unknown fields are refused, names are snake_case."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    def summary_options(self) -> dict[str, Any]:
        """The options as stored with the job (JSON-able)."""
        return self.model_dump(mode="json")


# ---------------------------------------------------------------- run context


@dataclass(frozen=True)
class BranchSets:
    """The branch labels of the tree HyPhy gets: user's label -> label as written for HyPhy."""

    labels: dict[str, str] = field(default_factory=dict)

    def hyphy(self, user_label: str) -> str | None:
        """The label HyPhy sees for `user_label` (case-insensitive), or None if absent."""
        wanted = user_label.strip().casefold()
        for user, written in self.labels.items():
            if user.casefold() == wanted:
                return written
        return None

    def names(self) -> list[str]:
        return sorted(self.labels)


@dataclass(frozen=True)
class InputContext:
    """What a method may look at when checking inputs and building its command line."""

    alignment: ValidationReport  # for a run on a tree alone (no alignment), the tree's report
    tree_available: bool  # a tree is uploaded, embedded, or will be built
    tree_rooted: bool = False
    branch_sets: BranchSets = field(default_factory=BranchSets)
    # the user's sequence name -> the safe id HyPhy sees (for methods that match tip names)
    tip_names: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- results


SERIES_FIELDS = ("sites", "branches")  # where most summaries keep their per-site/branch series


class Summary(BaseModel):
    """What a biologist reads first; every number comes from HyPhy's JSON."""

    # the fields holding plot series, one entry per site/branch/pair: left out of the brief
    series_fields: ClassVar[tuple[str, ...]] = SERIES_FIELDS

    method: str
    summary_text: str
    caveats: list[str] = Field(default_factory=list)
    sequences: int | None = None
    codons: int | None = None

    def brief(self) -> dict[str, Any]:
        """The summary without its series: what a language model is shown."""
        return self.without_series(self.model_dump(mode="json"))

    @classmethod
    def without_series(cls, dumped: dict[str, Any]) -> dict[str, Any]:
        """A summary of this model as dumped (e.g. stored with a job), without its series."""
        return {k: v for k, v in dumped.items() if k not in cls.series_fields}


@dataclass(frozen=True)
class Table:
    """One row per site or per branch; CSV is written from this."""

    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class DerivedDataset:
    """An alignment a result produces for further analyses (e.g. GARD's segments)."""

    name: str
    description: str
    fasta: str


class HyPhyMethod:
    """One HyPhy analysis. Subclasses set the class attributes and override what differs."""

    id: ClassVar[str]  # catalog id
    keyword: ClassVar[str]  # HyPhy's analysis keyword
    name: ClassVar[str]  # display name
    Options: ClassVar[type[MethodOptions]]
    requirements: ClassVar[MethodRequirements] = MethodRequirements()
    # what a table row is, and what the plots show (for the method reference in docs/)
    table_unit: ClassVar[Literal["site", "branch", "segment", "pair", "group"]] = "site"
    plots_shown: ClassVar[tuple[str, ...]] = ()
    summary_model: ClassVar[type[Summary]] = Summary

    def options(self, given: dict[str, Any]) -> MethodOptions:
        """Validated options (pydantic raises ValidationError naming each bad field)."""
        return self.Options.model_validate(given)

    def input_problems(self, options: MethodOptions, context: InputContext) -> list[Problem]:
        """Problems beyond `requirements` (e.g. named branch sets missing from the tree)."""
        return []

    def arguments(self, options: MethodOptions, context: InputContext) -> dict[str, OptionValue]:
        raise NotImplementedError

    def summarize(self, data: dict[str, Any], options: MethodOptions) -> Summary:
        raise NotImplementedError

    def plots(self, summary: Summary) -> list[PlotSpec]:
        return []

    def table(self, data: dict[str, Any], options: MethodOptions) -> Table:
        raise NotImplementedError

    def derived_datasets(
        self, data: dict[str, Any], records: list[tuple[str, str]], name: str
    ) -> list[DerivedDataset]:
        """Alignments made from this result and the analysed `records` (name, sequence)."""
        return []


# ---------------------------------------------------------------- helpers for modules


def number(value: Any) -> float:
    """A JSON number as float; anything else (null, strings) as NaN."""
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    )


def rounded(value: float, digits: int = 4) -> float | None:
    """For JSON: NaN and infinities become None (JSON cannot spell them)."""
    return round(value, digits) if math.isfinite(value) else None


def plural(n: int, word: str, plural_word: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural_word or word + 's')}"


def listing(items: Sequence[object], limit: int = 20) -> str:
    """'1, 5, 9 and 12 more' — the chat text abbreviates; tables list everything."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def input_counts(data: dict[str, Any]) -> tuple[int | None, int | None]:
    """(sequences, sites) from HyPhy's `input` block (sites are codons for codon methods)."""
    info = data.get("input", {})
    if not isinstance(info, dict):
        return None, None
    sequences, sites = info.get("number of sequences"), info.get("number of sites")
    return (
        sequences if isinstance(sequences, int) else None,
        sites if isinstance(sites, int) else None,
    )


def power_caveats(sequences: int | None) -> list[str]:
    if sequences is not None and sequences < FEW_SEQUENCES:
        return [
            f"Only {sequences} sequences: tests have little power, so finding nothing is weak "
            "evidence of absence. More sequences (ideally dozens) give more power."
        ]
    return []


# ---------------------------------------------------------------- plots


def layer(
    values: list[dict[str, Any]], mark: str | dict[str, Any], encoding: dict[str, Any]
) -> PlotSpec:
    """One layer's data, mark and encoding (a whole plot is `plot`, several are `layered`)."""
    return {"data": {"values": values}, "mark": mark, "encoding": encoding}


def plot(
    title: str,
    values: list[dict[str, Any]],
    mark: str | dict[str, Any],
    encoding: dict[str, Any],
    height: int | dict[str, Any] = 220,
    **extra: Any,
) -> PlotSpec:
    """A Vega-Lite spec as wide as the page; `extra` adds top-level keys (e.g. `transform`)."""
    return {**_frame(title, height), **layer(values, mark, encoding), **extra}


def layered(title: str, layers: list[PlotSpec], height: int | dict[str, Any] = 220) -> PlotSpec:
    """Several `layer`s drawn over each other on shared axes."""
    return {**_frame(title, height), "layer": layers}


def _frame(title: str, height: int | dict[str, Any]) -> PlotSpec:
    return {"$schema": VEGA_LITE_SCHEMA, "title": title, "width": "container", "height": height}


def tooltip(fields: Iterable[str]) -> list[dict[str, str]]:
    """Tooltip entries showing each field's value as written (no number formatting)."""
    return [{"field": name, "type": "nominal"} for name in fields]
