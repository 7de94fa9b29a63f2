"""Pure helpers between the catalog, validated datasets and a HyPhy run.

Options are checked against the catalog before a job is queued; HyPhy sees only options
that have a HyPhy flag (the others, such as FUBAR's posterior cut-off, are thresholds for
our summaries). Input files are chosen so that HyPhy reads what the user meant: PHYLIP
and NEXUS-with-a-separate-tree are rewritten as FASTA (a NEXUS file's own tree would
otherwise silently override the user's tree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from datamonkey_chat.analyses.hyphy import OptionValue
from datamonkey_chat.analyses.validation import (
    ValidationReport,
    alignment_records,
    hyphy_branch_label,
)
from datamonkey_chat.catalog import MethodInfo, MethodOption

# Options that name branch sets (checked against the tree's labels).
LABEL_OPTIONS = ("test", "reference", "branch-set")
STANDARD_BRANCH_SETS = frozenset({"all", "internal", "leaves", "unlabeled branches"})
# Summary thresholds: catalog option -> keyword of analyses.summaries.summarize.
THRESHOLD_OPTIONS = {
    "pvalue": "p_threshold",
    "p-value": "p_threshold",
    "posterior": "posterior_threshold",
}


class OptionError(ValueError):
    """An option the user gave is unknown or has an unusable value."""


# ---------------------------------------------------------------- options


def check_options(info: MethodInfo, given: dict[str, Any]) -> dict[str, Any]:
    """The options coerced to the catalog's types; OptionError names what is wrong."""
    known = {option.name: option for option in info.options}
    checked: dict[str, Any] = {}
    for name, value in given.items():
        option = known.get(name) or known.get(name.replace("_", "-"))
        if option is None:
            names = ", ".join(known) or "none"
            raise OptionError(f"{info.name} has no option '{name}'; its options are: {names}")
        if value is None:
            continue
        checked[option.name] = _coerce(info, option, value)
    return checked


def _coerce(info: MethodInfo, option: MethodOption, value: Any) -> Any:
    where = f"{info.name} option '{option.name}'"
    if option.type in ("number", "integer"):
        return _number(where, option.type, value)
    text = str(value).strip()
    if not text:
        raise OptionError(f"{where} must not be empty")
    if option.type == "choice" and option.choices:
        for choice in option.choices:
            if choice.lower() == text.lower():
                return choice
        # 'branches' also takes a label; the catalog lists that as "a labelled branch set"
        if not any(choice.startswith("a labelled") for choice in option.choices):
            raise OptionError(f"{where} must be one of: {', '.join(option.choices)}")
    return text


def _number(where: str, kind: str, value: Any) -> int | float:
    if isinstance(value, bool):
        raise OptionError(f"{where} must be a {kind}, not {value}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{where} must be a {kind}, not {value!r}") from None
    if not math.isfinite(number):
        raise OptionError(f"{where} must be a finite {kind}")
    if kind == "integer":
        if not number.is_integer():
            raise OptionError(f"{where} must be a whole number, not {value}")
        return int(number)
    return number


def required_labels(options: dict[str, Any]) -> list[str]:
    """Branch labels the options refer to; the tree must have them."""
    labels = [str(options[name]) for name in LABEL_OPTIONS if options.get(name)]
    branches = options.get("branches")
    if branches and str(branches).lower() not in STANDARD_BRANCH_SETS:
        labels.append(str(branches))
    return labels


def hyphy_arguments(
    info: MethodInfo, options: dict[str, Any], alignment: ValidationReport
) -> dict[str, OptionValue]:
    """`--flag value` pairs for HyPhy (flag without dashes), labels spelt as HyPhy reads them."""
    flags = {option.name: option.hyphy_flag for option in info.options}
    arguments: dict[str, OptionValue] = {}
    for name, value in options.items():
        flag = flags.get(name)
        if not flag:
            continue
        is_label = name in LABEL_OPTIONS or name == "branches" and value in required_labels(options)
        if is_label:
            value = hyphy_branch_label(str(value), alignment)
        arguments[flag.lstrip("-")] = value
    return arguments


def summary_thresholds(options: dict[str, Any]) -> dict[str, float]:
    return {
        keyword: float(options[name])
        for name, keyword in THRESHOLD_OPTIONS.items()
        if isinstance(options.get(name), int | float)
    }


# ---------------------------------------------------------------- input files


@dataclass(frozen=True)
class InputFiles:
    """What to write into the job directory for HyPhy."""

    alignment_name: str
    alignment_text: str
    tree_text: str | None = None
    notes: list[str] = field(default_factory=list)


def _overridden_tree(alignment: ValidationReport, tree: ValidationReport | None) -> bool:
    return tree is not None and alignment.has_tree and alignment.format == "nexus"


def conversion_notes(alignment: ValidationReport, tree: ValidationReport | None) -> list[str]:
    """What the user should know about how their files reach HyPhy."""
    if not _overridden_tree(alignment, tree):
        return []
    return [
        "The NEXUS alignment has its own tree; it is passed to HyPhy as FASTA so that "
        "your separate tree file is used."
    ]


def plan_inputs(
    alignment_text: str, alignment: ValidationReport, tree: ValidationReport | None
) -> InputFiles:
    if alignment.format == "phylip" or _overridden_tree(alignment, tree):
        name, text = "alignment.fas", fasta_text(alignment_records(alignment_text))
    else:
        suffix = {"nexus": "nex", "fasta": "fas"}.get(alignment.format or "", "txt")
        name, text = f"alignment.{suffix}", alignment_text
    tree_text = tree.tree_newick + "\n" if tree is not None and tree.tree_newick else None
    return InputFiles(name, text, tree_text, conversion_notes(alignment, tree))


def fasta_text(records: list[tuple[str, str]]) -> str:
    return "".join(f">{name}\n{sequence}\n" for name, sequence in records)


# ---------------------------------------------------------------- results


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def for_plots(summary: dict[str, Any]) -> dict[str, Any]:
    """Add the field names the web page plots read (posterior, name, p, threshold)."""
    threshold = summary.get("p_threshold", summary.get("posterior_threshold"))
    if threshold is not None:
        summary["threshold"] = threshold
    for site in summary.get("sites", []):
        if "prob_positive" in site:  # FUBAR
            site["posterior"] = site["prob_positive"]
            site["posterior_negative"] = site.get("prob_negative")
    for branch in summary.get("branches", []):
        if "branch" in branch:  # aBSREL
            branch["name"] = branch["branch"]
            branch["p"] = branch.get("uncorrected_p")
    return summary
