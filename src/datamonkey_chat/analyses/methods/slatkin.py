"""Slatkin-Maddison (HyPhy keyword `sm`, SM-2019.bf): are compartments segregated on the tree?

HyPhy counts the minimum number of migration events between compartments by parsimony and
compares it with leaf-label permutations (panmictic) and structured (block) permutations.
Compartments are defined by regular expressions on tip names (`--regexp-N`, with
`--description-N` naming group N). The tree HyPhy gets has safe tip ids (SEQ00001, ...), so
the user's expressions are evaluated here, on the user's names (first matching group wins,
as in HyPhy's regexp.PartitionByRegularExpressions), and each group is handed to HyPhy as an
exact alternation of its safe ids. Expressions are data (compiled by Python's `re`, length
capped), never code.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from datamonkey_chat.analyses.methods.base import (
    SERIES_FIELDS,
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
    SummaryError,
    Table,
    layer,
    layered,
    number,
    plural,
    rounded,
    tooltip,
)
from datamonkey_chat.analyses.validation import MethodRequirements, Problem

MAX_REGEXP = 200
# a repeated group that itself repeats, e.g. (a+)+: exponential backtracking on some names
NESTED_REPEAT = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")
DESCRIPTION = re.compile(r"^[\w .+\-]{1,60}$")


class CompartmentDefinition(BaseModel):
    """Upstream's SlatkinRequest_compartment_definitions_inner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regexp: str = Field(
        max_length=MAX_REGEXP,
        description="Python regular expression searched in each tip name (first group wins)",
    )
    description: str = Field(
        max_length=60, description="Name of the compartment (letters, digits, space, . + - _)"
    )

    @field_validator("regexp")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression: {exc}") from None
        if NESTED_REPEAT.search(value):
            raise ValueError("must not repeat a group that itself repeats, e.g. (a+)+")
        return value

    @field_validator("description")
    @classmethod
    def _safe(cls, value: str) -> str:
        value = value.strip()
        if not DESCRIPTION.match(value):
            raise ValueError("use 1-60 letters, digits, spaces or . + - _")
        return value


class SlatkinOptions(MethodOptions):
    """Upstream's SlatkinRequest fields (the endpoint takes `tree`)."""

    groups: Annotated[int, Field(ge=2, le=100)] = Field(
        2, description="Number of compartments: one compartment definition each"
    )
    compartment_definitions: list[CompartmentDefinition] = Field(
        default_factory=list,
        max_length=100,
        description="One {regexp, description} per compartment, matched against tip names",
    )
    replicates: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        1000, description="Permutation replicates"
    )
    weight: Annotated[float, Field(ge=0, le=1)] = Field(
        0.2,
        description="Probability of branch selection for structured permutation "
        "(0 = classical Slatkin-Maddison, 1 = fully structured)",
    )
    use_bootstrap: bool = Field(
        True, description="Weight structured permutations by bootstrap support (if the tree has it)"
    )


class SlatkinSummary(Summary):
    series_fields = (
        *SERIES_FIELDS,
        "null_distribution",
    )  # plotted; the assistant reads the numbers above it

    migrations: int | None
    compartments: dict[str, int] = Field(default_factory=dict, description="tips per compartment")
    replicates: int | None
    p_panmictic: float | None
    p_structured: float | None
    null_mean: float | None
    structured_cutoff: float | None
    null_distribution: list[dict[str, Any]] = Field(
        default_factory=list, description="migrations -> permutation count (panmictic)"
    )


def tip_map(context: InputContext) -> dict[str, str]:
    """User's tip name -> name in the tree HyPhy gets.

    `context.tip_names` when the input writer has renamed tips (the HyPhy run); before that
    (checking inputs) the user's own names, which is all the grouping needs.
    """
    if context.tip_names:
        return dict(context.tip_names)
    names = context.alignment.tree_tips or context.alignment.names
    return {name: name for name in names}


def assign_groups(
    definitions: list[CompartmentDefinition], names: list[str]
) -> tuple[list[list[str]], list[str]]:
    """(tips per definition, unmatched tips): first matching expression wins, like HyPhy."""
    patterns = [re.compile(d.regexp) for d in definitions]
    groups: list[list[str]] = [[] for _ in definitions]
    unmatched: list[str] = []
    for name in names:
        for index, pattern in enumerate(patterns):
            if pattern.search(name):
                groups[index].append(name)
                break
        else:
            unmatched.append(name)
    return groups, unmatched


def exact_alternation(safe_ids: list[str]) -> str:
    """A POSIX-extended expression matching exactly these tip ids."""
    return "^(" + "|".join(re.escape(s) for s in sorted(safe_ids)) + ")$"


def compartment_arguments(
    definitions: list[CompartmentDefinition], names: Mapping[str, str]
) -> dict[str, OptionValue]:
    """`description-N` / `regexp-N` flags, each group as an exact alternation of safe ids."""
    groups, _ = assign_groups(definitions, list(names))
    args: dict[str, OptionValue] = {}
    for index, (definition, members) in enumerate(zip(definitions, groups, strict=True), 1):
        args[f"description-{index}"] = definition.description
        args[f"regexp-{index}"] = exact_alternation([names[m] for m in members])
    return args


class Slatkin(HyPhyMethod):
    id = "slatkin-maddison"
    keyword = "sm"
    name = "Slatkin-Maddison"
    Options = SlatkinOptions
    # SM-2019.bf reads only `--tree` (upstream's SlatkinRequest has no alignment)
    requirements = MethodRequirements(
        data_types=frozenset({"nucleotide", "protein"}),
        needs_codons=False,
        needs_tree=True,
        needs_alignment=False,
    )
    table_unit = "branch"
    summary_model = SlatkinSummary
    plots_shown = ("migrations in label permutations (histogram) against the observed count",)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        definitions = options.compartment_definitions
        if len(definitions) != options.groups:
            return [
                Problem(
                    code="compartments",
                    message=f"Slatkin-Maddison: groups is {options.groups} but "
                    f"{plural(len(definitions), 'compartment definition')} were given; give one "
                    "{regexp, description} per group",
                )
            ]
        problems: list[Problem] = []
        descriptions = [d.description.casefold() for d in definitions]
        if len(set(descriptions)) != len(descriptions):
            problems.append(
                Problem(code="compartments", message="Compartment descriptions must differ")
            )
        names = tip_map(context)
        groups, unmatched = assign_groups(definitions, list(names))
        for definition, members in zip(definitions, groups, strict=True):
            if not members:
                problems.append(
                    Problem(
                        code="compartment_empty",
                        message=f"Compartment '{definition.description}' "
                        f"(regexp {definition.regexp!r}) matches no tip of the tree "
                        "(or only tips an earlier compartment took)",
                    )
                )
        if len(names) - len(unmatched) < 3:
            problems.append(
                Problem(
                    code="compartments",
                    message="Fewer than three tips fall into the compartments; nothing to test",
                )
            )
        return problems

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {"groups": options.groups}
        args.update(compartment_arguments(options.compartment_definitions, tip_map(context)))
        args["replicates"] = options.replicates
        args["weight"] = options.weight
        # asked only when the tree carries bootstrap values; unused otherwise
        args["use-bootstrap"] = "Yes" if options.use_bootstrap else "No"
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> SlatkinSummary:
        if "migrations" not in data or "p-value" not in data:
            raise SummaryError("result JSON has no 'migrations' or 'p-value'")
        migrations = data.get("migrations")
        pvalues = data.get("p-value") or {}
        p_pan = number(pvalues.get("panmictic"))
        p_str = number(pvalues.get("structured"))
        replicates = data.get("replicates") if isinstance(data.get("replicates"), int) else None
        counts = data.get("partition-counts") or {}
        compartments = {str(k): int(v) for k, v in counts.items() if isinstance(v, int | float)}
        null = _column(data.get("simulations", {}).get("panmictic"))
        histogram = [
            {"migrations": value, "count": null.count(value)} for value in sorted(set(null))
        ]
        null_mean = statistics.fmean(null) if null else float("nan")
        cutoff = number(data.get("structured-cutoff"))
        floor = 1 / (replicates + 1) if replicates else None
        groups = ", ".join(f"{name} ({n} tips)" for name, n in compartments.items())
        text = (
            f"Slatkin-Maddison: the tree needs at least {migrations} migration events between "
            f"{plural(len(compartments), 'compartment')} ({groups}); permuting tip labels "
            f"{replicates} times gave a mean of {_fmt(null_mean)}. Panmictic p = {_fmt(p_pan)}, "
            f"structured p = {_fmt(p_str)}: "
        )
        text += (
            "fewer migrations than expected under panmixia, evidence that the compartments are "
            "segregated (compartmentalized) on the tree."
            if p_pan <= 0.05
            else "no evidence of compartmentalization at p <= 0.05."
        )
        caveats = []
        if floor is not None:
            caveats.append(
                f"With {replicates} permutations a p-value cannot go below {floor:.2g}; "
                "use more replicates for a finer p-value."
            )
        caveats.append(
            "The structured p-value compares with permutations that partly keep subtrees "
            "together; it is the more conservative of the two."
        )
        if sum(compartments.values()) < 20:
            caveats.append(
                "Few tips: the permutation test has little power, so no evidence of "
                "compartmentalization is not evidence of mixing."
            )
        return SlatkinSummary(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=data.get("leaf-count") if isinstance(data.get("leaf-count"), int) else None,
            migrations=migrations if isinstance(migrations, int) else None,
            compartments=compartments,
            replicates=replicates,
            p_panmictic=rounded(p_pan, 6),
            p_structured=rounded(p_str, 6),
            null_mean=rounded(null_mean),
            structured_cutoff=rounded(cutoff),
            null_distribution=histogram,
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, SlatkinSummary)
        return [
            layered(
                "Slatkin-Maddison: migrations under label permutation vs observed",
                [
                    layer(
                        summary.null_distribution,
                        {"type": "bar", "color": "#bbbbbb"},
                        {
                            "x": {
                                "field": "migrations",
                                "type": "quantitative",
                                "title": "Migration events",
                            },
                            "y": {
                                "field": "count",
                                "type": "quantitative",
                                "title": "Permutations",
                            },
                            "tooltip": tooltip(("migrations", "count")),
                        },
                    ),
                    layer(
                        [{"observed": summary.migrations}],
                        {"type": "rule", "color": "#d62728", "size": 2},
                        {"x": {"field": "observed", "type": "quantitative"}},
                    ),
                ],
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        """One row per internal branch: migrations on it and its permutation p-values."""
        nodes = data.get("node-migrations") or {}
        pvalues = data.get("node-p-value") or {}
        panmictic, structured = pvalues.get("panmictic", {}), pvalues.get("structured", {})
        events = data.get("events") or {}
        rows = []
        for node in sorted(nodes, key=_node_order):
            event = events.get(node) if isinstance(events, dict) else None
            rows.append(
                [
                    node,
                    nodes[node],
                    panmictic.get(node),
                    structured.get(node),
                    event.get("from") if isinstance(event, dict) else None,
                    event.get("to") if isinstance(event, dict) else None,
                ]
            )
        return Table(
            columns=[
                "branch",
                "migrations",
                "panmictic p",
                "structured p",
                "migration from",
                "migration to",
            ],
            rows=rows,
        )


def _column(matrix: Any) -> list[float]:
    """HyPhy's N x 1 matrix [[a], [b], ...] as a list."""
    if not isinstance(matrix, list):
        return []
    values = [row[0] if isinstance(row, list) and row else row for row in matrix]
    return [float(v) for v in values if isinstance(v, int | float)]


def _node_order(name: str) -> tuple[str, int]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (name.rstrip("0123456789"), int(digits) if digits else 0)


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.4g}"


METHOD = Slatkin()
