"""RELAX: is selection relaxed (K < 1) or intensified (K > 1) on test branches vs reference?

Test and reference sets are branch labels of the tree ({TEST}, {REFERENCE}, any name) or
HyPhy's "Unlabeled branches". HyPhy takes one label per set, so the upstream arrays take one
entry each. A p-value above the threshold is "no evidence" of a change, never "no change".
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from datamonkey_chat.analyses.methods.base import (
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
    SummaryError,
    Table,
    input_counts,
    number,
    plot,
    power_caveats,
    rounded,
    tooltip,
)
from datamonkey_chat.analyses.methods.branches import branch_table
from datamonkey_chat.analyses.methods.options import (
    BranchList,
    GeneticCode,
    MultipleHits,
    PValue,
    YesNo,
)
from datamonkey_chat.analyses.validation import MethodRequirements, Problem

UNLABELED = "Unlabeled branches"
FITS = ("RELAX alternative", "RELAX partitioned descriptive", "General descriptive")


class RelaxOptions(MethodOptions):
    """Upstream's RelaxRequest fields, plus HyPhy's `mode`, `srv`, `multiple_hits`,
    `grid_size`, `starting_points` and the summary's `pvalue` (additive)."""

    genetic_code: GeneticCode = "Universal"
    test_branches: BranchList = Field(
        default_factory=list,
        description="The test set: one branch label of the tree (default TEST)",
    )
    reference_branches: BranchList = Field(
        default_factory=list,
        description="The reference set: one branch label (default REFERENCE if the tree has "
        "it, else the unlabelled branches); 'Unlabeled branches' names the unlabelled ones",
    )
    models: Literal["All", "Minimal"] = Field(
        "All", description="All: descriptive models and the test; Minimal: only the test"
    )
    rates: Annotated[int, Field(ge=2, le=10)] = Field(3, description="Omega rate classes")
    kill_zero_lengths: YesNo = Field(
        "No", description="Delete internal zero-length branches first (HyPhy's default is Yes)"
    )
    mode: Literal["Classic mode", "Group test mode"] = Field(
        "Classic mode",
        description="Group test mode compares all labelled sets (HyPhy asks only when the "
        "tree has two or more labels)",
    )
    srv: YesNo = Field("No", description="Synonymous rate variation across sites")
    multiple_hits: MultipleHits = "None"
    grid_size: Annotated[int, Field(ge=1, le=10000)] = 250
    starting_points: Annotated[int, Field(ge=1, le=1000)] = 1
    pvalue: PValue = Field(0.05, description="p-value threshold for the test of K = 1")


class RelaxSummary(Summary):
    test: str
    k: float | None = Field(description="relaxation (K < 1) or intensification (K > 1)")
    lrt: float | None
    p_value: float | None
    significant: bool
    direction: Literal["relaxation", "intensification", "none"]
    omega_classes: list[dict[str, Any]] = Field(
        default_factory=list, description="test and reference omega classes (alternative model)"
    )


def _sets(options: Any, context: InputContext) -> tuple[str, str]:
    """(test, reference) as the user named them, with the defaults filled in."""
    test = options.test_branches[0] if options.test_branches else "TEST"
    if options.reference_branches:
        reference = options.reference_branches[0]
    elif context.branch_sets.hyphy("REFERENCE") is not None:
        reference = "REFERENCE"
    else:
        reference = UNLABELED
    return test, reference


def _hyphy_set(name: str, context: InputContext) -> str | None:
    if name.casefold() in (UNLABELED.casefold(), "unlabeled", "unlabelled", "background"):
        return UNLABELED
    return context.branch_sets.hyphy(name)


def omega_classes(data: dict[str, Any]) -> list[dict[str, Any]]:
    fits = data.get("fits", {})
    for fit in FITS:
        try:
            distributions = fits[fit]["Rate Distributions"]
        except (KeyError, TypeError):
            continue
        classes = []
        for branch_set in ("Test", "Reference"):
            distribution = distributions.get(branch_set)
            if not isinstance(distribution, dict):
                continue
            for index in sorted(distribution, key=int):
                entry = distribution[index]
                classes.append(
                    {
                        "branches": branch_set,
                        "model": fit,
                        "class": int(index) + 1,
                        "omega": rounded(number(entry.get("omega"))),
                        "proportion": rounded(number(entry.get("proportion"))),
                    }
                )
        if classes:
            return classes
    return []


class Relax(HyPhyMethod):
    id = "relax"
    keyword = "relax"
    name = "RELAX"
    Options = RelaxOptions
    requirements = MethodRequirements(needs_labelled_branches=True)
    table_unit = "branch"
    summary_model = RelaxSummary
    plots_shown = ("omega classes of test and reference branches (alternative model)",)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        problems: list[Problem] = []
        for field, values in (
            ("test_branches", options.test_branches),
            ("reference_branches", options.reference_branches),
        ):
            if len(values) > 1:
                problems.append(
                    Problem(
                        code="one_branch_set",
                        message=f"RELAX takes one branch label for {field}; got "
                        f"{', '.join(values)}. Label those branches alike in the tree "
                        "(e.g. {TEST}) and name that label.",
                    )
                )
        test, reference = _sets(options, context)
        known = ", ".join(context.branch_sets.names()) or "none"
        for role, name in (("test", test), ("reference", reference)):
            if _hyphy_set(name, context) is None:
                problems.append(
                    Problem(
                        code="branch_label_missing",
                        message=f"RELAX's {role} set '{name}' is not a branch label of the "
                        f"tree; its labels are: {known}",
                    )
                )
        if test.casefold() == reference.casefold():
            problems.append(
                Problem(
                    code="same_branch_sets",
                    message="RELAX's test and reference sets must differ",
                )
            )
        return problems

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        test, reference = _sets(options, context)
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "mode": options.mode,
            "test": _hyphy_set(test, context) or test,
            "reference": _hyphy_set(reference, context) or reference,
            "models": options.models,
            "kill-zero-lengths": options.kill_zero_lengths,
            "rates": options.rates,
            "srv": options.srv,
            "multiple-hits": options.multiple_hits,
            "grid-size": options.grid_size,
            "starting-points": options.starting_points,
        }
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> RelaxSummary:
        results = data.get("test results")
        if not isinstance(results, dict):
            raise SummaryError("result JSON has no 'test results'")
        threshold = float(options.pvalue)
        k = number(results.get("relaxation or intensification parameter"))
        lrt, p = number(results.get("LRT")), number(results.get("p-value"))
        significant = p <= threshold
        test = f"likelihood-ratio test of K = 1, p <= {threshold:g}"
        direction: Literal["relaxation", "intensification", "none"] = "none"
        if significant and k < 1:
            direction = "relaxation"
        elif significant and k > 1:
            direction = "intensification"
        if direction != "none":
            text = (
                f"RELAX found evidence of {direction} of selection on the test branches "
                f"relative to the reference branches: K = {_fmt(k)}, p = {_fmt(p)} "
                f"(LRT {_fmt(lrt)}; {test})."
            )
        else:
            text = (
                f"RELAX found no evidence that selection on the test branches is relaxed or "
                f"intensified relative to the reference branches: K = {_fmt(k)}, "
                f"p = {_fmt(p)} (LRT {_fmt(lrt)}; {test})."
            )
        sequences, codons = input_counts(data)
        caveats = power_caveats(sequences)
        if direction == "none":
            caveats.append(
                "A p-value above the threshold is no evidence of a change in selection "
                "intensity, not evidence that selection is the same on both sets."
            )
        caveats.append(
            "K describes how omega classes move towards 1 (K < 1) or away from it (K > 1) on "
            "test branches; it does not by itself show positive selection."
        )
        return RelaxSummary(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=sequences,
            codons=codons,
            test=test,
            k=rounded(k),
            lrt=rounded(lrt),
            p_value=rounded(p, 6),
            significant=significant,
            direction=direction,
            omega_classes=omega_classes(data),
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, RelaxSummary)
        return [
            plot(
                f"RELAX: omega distributions, test vs reference (K = {summary.k})",
                summary.omega_classes,
                {"type": "bar", "width": 8, "opacity": 0.8},
                {
                    "x": {
                        "field": "omega",
                        "type": "quantitative",
                        "title": "omega (dN/dS), log scale",
                        "scale": {"type": "symlog"},
                    },
                    "y": {
                        "field": "proportion",
                        "type": "quantitative",
                        "title": "Proportion of sites",
                        "scale": {"domain": [0, 1]},
                    },
                    "color": {
                        "field": "branches",
                        "type": "nominal",
                        "title": "Branches",
                        "scale": {"domain": ["Test", "Reference"], "range": ["#d62728", "#1f77b4"]},
                    },
                    "tooltip": tooltip(("branches", "class", "omega", "proportion", "model")),
                },
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        """One row per branch: its set and branch lengths under each model HyPhy reports."""
        return branch_table(data)


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.4g}"


METHOD = Relax()
