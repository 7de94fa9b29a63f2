"""aBSREL: which branches show episodic diversifying selection on some of their sites.

HyPhy tests only the branches of the chosen set; the others appear in `branch attributes`
with a null `Corrected P-value`. Counts come from the tested branches only, and HyPhy's own
`test results.tested` is the number of branches tested (Holm-Bonferroni corrects over it).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field

from datamonkey_chat.analyses.methods.base import (
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
    Table,
    input_counts,
    listing,
    number,
    plot,
    plural,
    power_caveats,
    rounded,
    tooltip,
)
from datamonkey_chat.analyses.methods.branches import branch_attributes, branch_table
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

NO_BLB = "HyPhy 2.5's aBSREL has no bag-of-little-bootstraps resampling"


class AbsrelOptions(MethodOptions):
    """Upstream's AbsrelRequest fields, plus `syn_rates` and `pvalue` (additive)."""

    srv: YesNo = Field("Yes", description="Synonymous rate variation across sites")
    multiple_hits: MultipleHits = Field(
        "None", description="Allow double (and triple) nucleotide substitutions"
    )
    genetic_code: GeneticCode = "Universal"
    branches: BranchList
    blb: Annotated[float, Field(ge=0, le=1), only_default("blb", 1.0, NO_BLB)] = Field(
        1.0, description="Bag of little bootstrap alignment resampling rate (1: none)"
    )
    syn_rates: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="Synonymous rate classes when srv is Yes"
    )
    pvalue: PValue = Field(
        0.05, description="Threshold on Holm-Bonferroni corrected p-values for calling a branch"
    )


class BranchSelection(Summary):
    """aBSREL's verdict per tested branch."""

    test: str
    tested_count: int = Field(description="branches HyPhy tested (its own 'tested' count)")
    selected_branches: list[str] = Field(default_factory=list)
    selected_count: int = 0
    branches: list[dict[str, Any]] = Field(
        default_factory=list, description="tested branches only: p-values and omega classes"
    )


def _max_omega(distribution: Any) -> tuple[float, float]:
    """(largest omega, its proportion) from [[omega, proportion], ...]."""
    best = (math.nan, math.nan)
    if isinstance(distribution, list):
        for pair in distribution:
            if isinstance(pair, list) and len(pair) >= 2:
                omega = number(pair[0])
                if math.isnan(best[0]) or omega > best[0]:
                    best = (omega, number(pair[1]))
    return best


def _tested(attributes: dict[str, Any]) -> bool:
    return isinstance(attributes.get("Corrected P-value"), int | float)


def _rates(attributes: dict[str, Any]) -> str | None:
    """The branch's omega classes as text, e.g. 'omega=0.1 (90.00%); omega=5 (10.00%)'."""
    rates = attributes.get("Rate Distributions")
    if not isinstance(rates, list):
        return None
    return "; ".join(
        f"omega={number(pair[0]):.4g} ({number(pair[1]):.2%})"
        for pair in rates
        if isinstance(pair, list) and len(pair) >= 2
    )


class Absrel(HyPhyMethod):
    id = "absrel"
    keyword = "absrel"
    name = "aBSREL"
    Options = AbsrelOptions
    table_unit = "branch"
    summary_model = BranchSelection
    plots_shown = ("corrected p-value per tested branch, coloured by the verdict",)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        return branch_problems(options.branches, context, self.name)

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "srv": options.srv,
            "multiple-hits": options.multiple_hits,
        }
        if options.srv == "Yes":
            args["syn-rates"] = options.syn_rates
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> BranchSelection:
        threshold = float(options.pvalue)
        series: list[dict[str, Any]] = []
        for branch, attributes in sorted(branch_attributes(data).items()):
            if not isinstance(attributes, dict) or not _tested(attributes):
                continue
            corrected = number(attributes.get("Corrected P-value"))
            omega, weight = _max_omega(attributes.get("Rate Distributions"))
            series.append(
                {
                    "branch": branch,
                    "corrected_p": rounded(corrected, 6),
                    "uncorrected_p": rounded(number(attributes.get("Uncorrected P-value")), 6),
                    "lrt": rounded(number(attributes.get("LRT"))),
                    "rate_classes": attributes.get("Rate classes"),
                    "max_omega": rounded(omega),
                    "max_omega_proportion": rounded(weight),
                    "selected": corrected <= threshold,
                }
            )
        selected = [s["branch"] for s in series if s["selected"]]
        results = data.get("test results", {})
        hyphy_tested = results.get("tested") if isinstance(results, dict) else None
        tested = hyphy_tested if isinstance(hyphy_tested, int) else len(series)
        test = f"Holm-Bonferroni corrected LRT p <= {threshold:g}"
        text = (
            f"aBSREL found evidence of episodic diversifying selection on "
            f"{len(selected)} of {plural(tested, 'tested branch', 'tested branches')} ({test})."
        )
        if selected:
            text += f" Selected branches: {listing(selected)}."
        sequences, codons = input_counts(data)
        caveats = power_caveats(sequences)
        if not selected:
            caveats.append(
                "No branch passed the threshold: this is no evidence of episodic selection on "
                "these branches, not evidence that there was none."
            )
        if tested > 1:
            caveats.append(
                f"p-values are corrected for testing {tested} branches; testing fewer branches "
                "(a set chosen before looking at the data) gives more power."
            )
        return BranchSelection(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=sequences,
            codons=codons,
            test=test,
            tested_count=tested,
            selected_branches=selected,
            selected_count=len(selected),
            branches=series,
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, BranchSelection)
        values = [
            {**b, "verdict": "selected" if b["selected"] else "not selected"}
            for b in summary.branches
            if b["corrected_p"] is not None
        ]
        return [
            plot(
                f"aBSREL: corrected p-value per tested branch ({summary.test})",
                values,
                {"type": "bar"},
                {
                    "y": {"field": "branch", "type": "nominal", "sort": "x", "title": "Branch"},
                    "x": {
                        "field": "corrected_p",
                        "type": "quantitative",
                        "title": "Corrected p-value",
                        "scale": {"domain": [0, 1]},
                    },
                    "color": {
                        "field": "verdict",
                        "type": "nominal",
                        "title": "Episodic selection",
                        "scale": {
                            "domain": ["selected", "not selected"],
                            "range": ["#d62728", "#bbbbbb"],
                        },
                    },
                    "tooltip": tooltip(
                        ("branch", "corrected_p", "uncorrected_p", "lrt", "max_omega")
                    ),
                },
                height={"step": 16},
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        return branch_table(
            data, leading={"tested": _tested}, trailing={"Rate Distributions": _rates}
        )


METHOD = Absrel()
