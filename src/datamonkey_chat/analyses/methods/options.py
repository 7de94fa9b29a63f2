"""Option fields shared by several methods, spelt as the upstream request models spell them.

Upstream (Datamonkey API 1.2.0) names genetic codes with spaces ("Vertebrate mtDNA"); HyPhy's
`--code` wants its own names ("Vertebrate-mtDNA"). Both are accepted; HyPhy gets its own.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from datamonkey_chat.analyses.methods.base import BranchSets, InputContext, OptionValue
from datamonkey_chat.analyses.validation import GENETIC_CODES, Problem

YesNo = Literal["Yes", "No"]
MultipleHits = Literal["None", "Double", "Double+Triple"]

# upstream enum value -> HyPhy --code name (upstream spells Euplotid "Eupltoid")
UPSTREAM_CODES: dict[str, str] = {
    "Universal": "Universal",
    "Vertebrate mtDNA": "Vertebrate-mtDNA",
    "Yeast mtDNA": "Yeast-mtDNA",
    "Mold/Protozoan mtDNA": "Mold-Protozoan-mtDNA",
    "Invertebrate mtDNA": "Invertebrate-mtDNA",
    "Ciliate Nuclear": "Ciliate-Nuclear",
    "Echinoderm mtDNA": "Echinoderm-mtDNA",
    "Eupltoid Nuclear": "Euplotid-Nuclear",
    "Alt. Yeast Nuclear": "Alt-Yeast-Nuclear",
    "Ascidian mtDNA": "Ascidian-mtDNA",
    "Flatworm mtDNA": "Flatworm-mtDNA",
    "Blepharisma Nuclear": "Blepharisma-Nuclear",
}


def _key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


_CODE_LOOKUP: dict[str, str] = {
    **{_key(name): name for name in GENETIC_CODES},
    **{_key(upstream): hyphy for upstream, hyphy in UPSTREAM_CODES.items()},
    _key("Euplotid Nuclear"): "Euplotid-Nuclear",
}


def hyphy_genetic_code(value: Any) -> str:
    """HyPhy's name for a genetic code given in upstream's or HyPhy's spelling."""
    if isinstance(value, Enum):
        value = value.value
    if not isinstance(value, str):
        raise ValueError("must be the name of a genetic code")
    code = _CODE_LOOKUP.get(_key(value))
    if code is None:
        raise ValueError(f"unknown genetic code '{value[:60]}'; known: {', '.join(UPSTREAM_CODES)}")
    return code


GeneticCode = Annotated[
    str,
    BeforeValidator(hyphy_genetic_code),
    Field(
        default="Universal",
        description="Genetic code: upstream names (e.g. 'Vertebrate mtDNA') or HyPhy's "
        "(e.g. 'Vertebrate-mtDNA'); stored as HyPhy's name.",
        json_schema_extra={"examples": list(UPSTREAM_CODES)},
    ),
]


def _clean_labels(values: list[str]) -> list[str]:
    cleaned = [v.strip() for v in values if v and v.strip()]
    if len(cleaned) > 50:
        raise ValueError("at most 50 branch sets")
    return cleaned


BranchList = Annotated[
    list[Annotated[str, Field(max_length=100)]],
    AfterValidator(_clean_labels),
    Field(
        default_factory=list,
        description="Branches to test: empty for all; 'Internal', 'Leaves', or branch-set "
        "labels from the tree (e.g. 'TEST' for branches tagged {TEST}).",
    ),
]

PValue = Annotated[float, Field(gt=0, le=1)]
Posterior = Annotated[float, Field(gt=0, lt=1)]

STANDARD_SETS = {"all": "All", "internal": "Internal", "leaves": "Leaves"}


def branches_arguments(branches: list[str], sets: BranchSets) -> dict[str, OptionValue]:
    """HyPhy's `--branches`: All/Internal/Leaves or one label; none given, HyPhy's default
    (no argument).

    HyPhy tests one set per run; several labels are refused in `branch_problems`.
    """
    if not branches:
        return {}
    first = branches[0]
    value = STANDARD_SETS.get(first.casefold()) or sets.hyphy(first)
    return {"branches": value} if value else {}


def branch_problems(branches: list[str], context: InputContext, method: str) -> list[Problem]:
    """Named branch sets must exist in the tree; HyPhy takes one set per run."""
    problems: list[Problem] = []
    labels = [b for b in branches if b.casefold() not in STANDARD_SETS]
    if len(branches) > 1:
        problems.append(
            Problem(
                code="one_branch_set",
                message=f"{method} tests one branch set per run (All, Internal, Leaves or one "
                f"label); got {', '.join(branches)}",
            )
        )
    missing = [label for label in labels if context.branch_sets.hyphy(label) is None]
    if missing:
        known = ", ".join(context.branch_sets.names()) or "none"
        problems.append(
            Problem(
                code="branch_label_missing",
                message=f"The tree has no branches labelled {', '.join(missing)}; "
                f"its labels are: {known}",
            )
        )
    return problems


def only_default(name: str, default: Any, reason: str) -> Any:
    """An upstream field HyPhy 2.5.47 cannot honour: its default is accepted, others refused."""

    def check(value: Any) -> Any:
        if value != default:
            raise ValueError(f"only {default!r} is supported here: {reason}")
        return value

    return AfterValidator(check)
