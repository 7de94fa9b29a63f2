"""BUSTED: has the gene experienced episodic diversifying selection anywhere (gene-wide test)?

The headline is one likelihood-ratio test. The unconstrained model's omega classes (with
their proportions) show how strong and how common the selection is; per-site evidence ratios
(written only when HyPhy fits the constrained model) are descriptive, not a site test.
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
from datamonkey_chat.analyses.methods.options import (
    BranchList,
    GeneticCode,
    MultipleHits,
    PValue,
    YesNo,
    branch_problems,
    branches_arguments,
    only_default,
)
from datamonkey_chat.analyses.validation import Problem

NO_ERROR_SINK = "HyPhy 2.5's BUSTED has no error-sink rate class"
SRV_FLAGS = {"Yes": "Yes", "No": "No", "branch-site": "Branch-site"}
ER_THRESHOLD = 10.0  # evidence ratios above this are listed (descriptive)


class BustedOptions(MethodOptions):
    """Upstream's BustedRequest fields, plus `pvalue` (additive)."""

    srv: Literal["Yes", "No", "branch-site"] = Field(
        "Yes", description="Synonymous rate variation: across sites, none, or branch-site"
    )
    multiple_hits: MultipleHits = Field(
        "None", description="Allow double (and triple) nucleotide substitutions"
    )
    genetic_code: GeneticCode = "Universal"
    branches: BranchList
    rates: Annotated[int, Field(ge=1, le=10)] = Field(3, description="Omega rate classes")
    syn_rates: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="Synonymous rate classes (when srv is not No)"
    )
    grid_size: Annotated[int, Field(ge=1, le=10000)] = Field(
        250, description="Points in the initial distributional guess for likelihood fitting"
    )
    starting_points: Annotated[int, Field(ge=1, le=1000)] = Field(
        1, description="Initial random guesses to seed rate optimisation (<= grid_size / 10)"
    )
    error_sink: Annotated[YesNo, only_default("error_sink", "No", NO_ERROR_SINK)] = "No"
    pvalue: PValue = Field(0.05, description="p-value threshold for the gene-wide test")


class BustedSummary(Summary):
    test: str
    lrt: float | None
    p_value: float | None
    selected: bool
    omega_classes: list[dict[str, Any]] = Field(
        default_factory=list,
        description="unconstrained model: branch set, omega and proportion per class",
    )
    evidence_ratio_sites: list[int] = Field(
        default_factory=list, description=f"sites with an evidence ratio above {ER_THRESHOLD:g}"
    )
    sites: list[dict[str, Any]] = Field(
        default_factory=list, description="per-site evidence ratios, when HyPhy reports them"
    )


def _rate_distributions(data: dict[str, Any], model: str) -> dict[str, Any]:
    try:
        distributions = data["fits"][model]["Rate Distributions"]
    except (KeyError, TypeError):
        return {}
    return distributions if isinstance(distributions, dict) else {}


def omega_classes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The unconstrained model's omega classes for test (and background) branches."""
    classes = []
    for branch_set, distribution in _rate_distributions(data, "Unconstrained model").items():
        if branch_set not in ("Test", "Background") or not isinstance(distribution, dict):
            continue
        for index in sorted(distribution, key=int):
            entry = distribution[index]
            classes.append(
                {
                    "branches": branch_set,
                    "class": int(index) + 1,
                    "omega": rounded(number(entry.get("omega"))),
                    "proportion": rounded(number(entry.get("proportion"))),
                }
            )
    return classes


def evidence_ratios(data: dict[str, Any]) -> list[tuple[float, float]]:
    """(constrained, optimized null) evidence ratio per site; [] when HyPhy wrote none."""
    ratios = data.get("Evidence Ratios", {})
    if not isinstance(ratios, dict):
        return []

    def row(name: str) -> list[Any]:
        values = ratios.get(name)
        if isinstance(values, list) and values and isinstance(values[0], list):
            return list(values[0])
        return []

    constrained, optimized = row("constrained"), row("optimized null")
    if not constrained:
        return []
    if len(optimized) != len(constrained):
        optimized = [None] * len(constrained)
    return [(number(c), number(o)) for c, o in zip(constrained, optimized, strict=True)]


class Busted(HyPhyMethod):
    id = "busted"
    keyword = "busted"
    name = "BUSTED"
    Options = BustedOptions
    summary_model = BustedSummary
    plots_shown = (
        "omega distribution of the unconstrained model (classes and proportions)",
        "evidence ratio per codon (when HyPhy fits the constrained model)",
    )

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        problems = branch_problems(options.branches, context, self.name)
        if options.starting_points > max(1, options.grid_size // 10):
            problems.append(
                Problem(
                    code="option_range",
                    message="BUSTED's starting_points can be at most grid_size / 10 "
                    f"({max(1, options.grid_size // 10)} for grid_size {options.grid_size})",
                )
            )
        return problems

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "srv": SRV_FLAGS[options.srv],
            "rates": options.rates,
            "multiple-hits": options.multiple_hits,
            "grid-size": options.grid_size,
            "starting-points": options.starting_points,
        }
        if options.srv != "No":
            args["syn-rates"] = options.syn_rates
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> BustedSummary:
        results = data.get("test results")
        if not isinstance(results, dict):
            raise SummaryError("result JSON has no 'test results'")
        threshold = float(options.pvalue)
        lrt, p = number(results.get("LRT")), number(results.get("p-value"))
        selected = p <= threshold
        test = f"likelihood-ratio test p <= {threshold:g}"
        classes = omega_classes(data)
        ratios = evidence_ratios(data)
        sites = [
            {"site": i + 1, "er_constrained": rounded(c), "er_optimized_null": rounded(o)}
            for i, (c, o) in enumerate(ratios)
        ]
        strong = [i + 1 for i, (c, _) in enumerate(ratios) if c > ER_THRESHOLD]
        verdict = "found" if selected else "found no"
        text = (
            f"BUSTED {verdict} evidence of episodic diversifying selection somewhere in the gene "
            f"on the tested branches (LRT {_fmt(lrt)}, p = {_fmt(p)}; {test})."
        )
        test_classes = [c for c in classes if c["branches"] == "Test"]
        if test_classes:
            top = max(test_classes, key=lambda c: c["omega"] or 0)
            text += (
                f" The strongest omega class on test branches is omega = {_fmt(top['omega'])} "
                f"for {_percent(top['proportion'])} of branch-site combinations."
            )
        sequences, codons = input_counts(data)
        caveats = power_caveats(sequences)
        if not selected:
            caveats.append(
                "A non-significant BUSTED test is no evidence of selection, not evidence that "
                "no site on any branch was ever under selection."
            )
        else:
            caveats.append(
                "BUSTED is gene-wide: it does not say which sites or branches were selected. "
                "Per-site evidence ratios are descriptive only; use MEME or aBSREL to locate "
                "selection."
            )
        return BustedSummary(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=sequences,
            codons=codons,
            test=test,
            lrt=rounded(lrt),
            p_value=rounded(p, 6),
            selected=selected,
            omega_classes=classes,
            evidence_ratio_sites=strong,
            sites=sites,
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, BustedSummary)
        plots: list[PlotSpec] = [
            plot(
                "BUSTED: omega distribution (unconstrained model)",
                summary.omega_classes,
                {"type": "bar", "width": 8},
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
                        "title": "Proportion of branch-site combinations",
                        "scale": {"domain": [0, 1]},
                    },
                    "color": {"field": "branches", "type": "nominal", "title": "Branches"},
                    "tooltip": tooltip(("branches", "class", "omega", "proportion")),
                },
            )
        ]
        if summary.sites:
            plots.append(
                plot(
                    "BUSTED: evidence ratio per codon (constrained model; descriptive)",
                    summary.sites,
                    {"type": "point", "filled": True, "size": 30},
                    {
                        "x": {"field": "site", "type": "quantitative", "title": "Codon"},
                        "y": {
                            "field": "er_constrained",
                            "type": "quantitative",
                            "title": "Evidence ratio (log scale)",
                            "scale": {"type": "log"},
                        },
                        "tooltip": tooltip(("site", "er_constrained", "er_optimized_null")),
                    },
                )
            )
        return plots

    def table(self, data: dict[str, Any], options: Any) -> Table:
        ratios = evidence_ratios(data)
        if ratios:
            return Table(
                columns=["site", "evidence ratio (constrained)", "evidence ratio (optimized null)"],
                rows=[[i + 1, c, o] for i, (c, o) in enumerate(ratios)],
            )
        # no site-level output (no omega > 1 class): the omega classes are the table
        classes = omega_classes(data)
        return Table(
            columns=["branches", "class", "omega", "proportion"],
            rows=[[c["branches"], c["class"], c["omega"], c["proportion"]] for c in classes],
        )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


METHOD = Busted()
