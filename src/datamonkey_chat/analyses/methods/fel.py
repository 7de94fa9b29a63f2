"""FEL: pervasive selection per site, beta (dN) against alpha (dS) by a likelihood-ratio test."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from datamonkey_chat.analyses.methods import sites
from datamonkey_chat.analyses.methods.base import (
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
    Table,
    input_counts,
    number,
    rounded,
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

NO_MULTIHIT = "HyPhy 2.5.47's FEL has no multiple-hit models"


class FelOptions(MethodOptions):
    """Upstream's FelRequest fields, plus `pvalue` (HyPhy's reporting threshold)."""

    ci: YesNo = Field("No", description="Profile-likelihood confidence intervals per site")
    srv: YesNo = Field("Yes", description="Synonymous rate variation across sites")
    resample: Annotated[int, Field(ge=0, le=1000)] = Field(
        0, description="Parametric bootstrap replicates per site (0: asymptotic LRT); slow"
    )
    multiple_hits: Annotated[MultipleHits, only_default("multiple_hits", "None", NO_MULTIHIT)] = (
        Field("None", description=f"Upstream field; only 'None' ({NO_MULTIHIT})")
    )
    site_multihit: Annotated[str, only_default("site_multihit", "Estimate", NO_MULTIHIT)] = Field(
        "Estimate", description=f"Upstream field; only 'Estimate' ({NO_MULTIHIT})"
    )
    genetic_code: GeneticCode = "Universal"
    branches: BranchList
    pvalue: PValue = Field(0.1, description="p-value threshold for calling a site selected")


class Fel(HyPhyMethod):
    id = "fel"
    keyword = "fel"
    name = "FEL"
    Options = FelOptions
    summary_model = sites.SelectedSites
    plots_shown = ("beta - alpha per codon, coloured by the verdict at the p-value threshold",)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        return branch_problems(options.branches, context, self.name)

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "srv": options.srv,
            "ci": options.ci,
            "pvalue": options.pvalue,
            "resample": options.resample,
        }
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        names = sites.headers(data)
        a, b, p = (sites.column(names, c) for c in ("alpha", "beta", "p-value"))
        threshold = float(options.pvalue)

        def verdict(row: sites.Row) -> sites.Verdict:
            alpha, beta, pv = number(row[a]), number(row[b]), number(row[p])
            if pv <= threshold and beta > alpha:
                return "positive"
            if pv <= threshold and beta < alpha:
                return "negative"
            return "none"

        def fields(row: sites.Row) -> dict[str, Any]:
            return {
                "alpha": rounded(number(row[a])),
                "beta": rounded(number(row[b])),
                "p": rounded(number(row[p])),
            }

        selection = sites.select_sites(data, verdict, fields)
        test = f"likelihood-ratio test p <= {threshold:g}"
        sequences, codons = input_counts(data)
        return sites.SelectedSites(
            method=self.name,
            summary_text=sites.selected_sites_text(
                self.name,
                selection.positive,
                selection.negative,
                len(selection.series),
                test,
                "pervasive positive (diversifying)",
            ),
            caveats=sites.site_caveats(data, len(selection.positive)),
            sequences=sequences,
            codons=codons,
            test=test,
            **selection.selected_fields(),
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, sites.SelectedSites)
        values = sites.with_beta_minus_alpha(summary.sites)
        return [
            sites.site_plot(
                f"FEL: dN - dS per codon ({summary.test})",
                values,
                "beta_minus_alpha",
                "beta - alpha",
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        return sites.site_table(data)


METHOD = Fel()
