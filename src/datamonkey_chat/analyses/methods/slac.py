"""SLAC: pervasive selection per site by counting substitutions on ancestral reconstructions.

HyPhy's SLAC.bf writes two tables per partition, `MLE.content.<n>.by-site.RESOLVED` (counts on
the most likely ancestors, ambiguities resolved) and `...AVERAGED` (ambiguities averaged), with
the same columns. It calls a site significant by the smaller of the two tables' p-values, testing
negative selection (`P [dN/dS < 1]`) first, then positive (`P [dN/dS > 1]`); so do we.
"""

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
    SummaryError,
    Table,
    input_counts,
    number,
    rounded,
)
from datamonkey_chat.analyses.methods.options import (
    BranchList,
    GeneticCode,
    PValue,
    branch_problems,
    branches_arguments,
)
from datamonkey_chat.analyses.validation import Problem

TABLES = ("RESOLVED", "AVERAGED")


class SlacOptions(MethodOptions):
    """Upstream's SlacRequest fields (HyPhy's own range for `samples` as the upper bound)."""

    genetic_code: GeneticCode = "Universal"
    branches: BranchList
    samples: Annotated[int, Field(ge=1, le=100_000)] = Field(
        100, description="Ancestral-reconstruction samples to assess uncertainty"
    )
    pvalue: PValue = Field(0.1, description="p-value threshold for calling a site selected")


def _by_site(partition: Any) -> dict[str, Any]:
    try:
        tables = partition["by-site"]
    except (KeyError, TypeError) as exc:
        raise SummaryError("SLAC JSON has no MLE.content.<partition>.by-site") from exc
    if not isinstance(tables, dict) or "RESOLVED" not in tables:
        raise SummaryError("SLAC JSON has no by-site.RESOLVED table")
    return tables


def _paired_rows(partition: Any) -> list[tuple[Any, Any]]:
    """(RESOLVED row, AVERAGED row) per site; AVERAGED falls back to RESOLVED if absent."""
    tables = _by_site(partition)
    resolved = tables["RESOLVED"]
    averaged = tables.get("AVERAGED", resolved)
    if not isinstance(resolved, list) or not isinstance(averaged, list):
        raise SummaryError("SLAC JSON's by-site tables are not tables")
    return list(zip(resolved, averaged, strict=False))


class Slac(HyPhyMethod):
    id = "slac"
    keyword = "slac"
    name = "SLAC"
    Options = SlacOptions
    summary_model = sites.SelectedSites
    plots_shown = (
        "dN - dS per codon (resolved counts), coloured by the verdict at the p-value threshold",
    )

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        return branch_problems(options.branches, context, self.name)

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "samples": options.samples,
            "pvalue": options.pvalue,
        }
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        names = sites.headers(data)
        ds, dn, diff = (sites.column(names, c) for c in ("dS", "dN", "dN-dS"))
        pos, neg = sites.column(names, "P [dN/dS > 1]"), sites.column(names, "P [dN/dS < 1]")
        threshold = float(options.pvalue)

        def p_values(row: sites.Row) -> tuple[float, float]:
            """(p positive, p negative): the smaller of the resolved and averaged counts'."""
            resolved, averaged = row
            return (
                min(number(resolved[pos]), number(averaged[pos])),
                min(number(resolved[neg]), number(averaged[neg])),
            )

        def verdict(row: sites.Row) -> sites.Verdict:
            p_pos, p_neg = p_values(row)
            if p_neg <= threshold:  # SLAC.bf tests negative selection first
                return "negative"
            if p_pos <= threshold:
                return "positive"
            return "none"

        def fields(row: sites.Row) -> dict[str, Any]:
            resolved = row[0]
            p_pos, p_neg = p_values(row)
            return {
                "dS": rounded(number(resolved[ds])),
                "dN": rounded(number(resolved[dn])),
                "dN_minus_dS": rounded(number(resolved[diff])),
                "p_positive": rounded(p_pos),
                "p_negative": rounded(p_neg),
            }

        selection = sites.select_sites(data, verdict, fields, _paired_rows)
        test = (
            f"p <= {threshold:g}, the smaller of the resolved and averaged ancestral counts' "
            "binomial p-values"
        )
        sequences, codons = input_counts(data)
        caveats = sites.site_caveats(data, len(selection.positive))
        caveats.append(
            "SLAC counts substitutions on one ancestral reconstruction and is conservative; "
            "FEL or FUBAR usually detect more sites on the same data."
        )
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
            caveats=caveats,
            sequences=sequences,
            codons=codons,
            test=test,
            **selection.selected_fields(),
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, sites.SelectedSites)
        return [
            sites.site_plot(
                f"SLAC: dN - dS per codon (significant at {summary.test.split(',')[0]})",
                summary.sites,
                "dN_minus_dS",
                "dN - dS (resolved counts)",
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        """Both ancestral tables side by side: `<column> (resolved)`, `<column> (averaged)`."""
        names = sites.headers(data)
        columns = ["site", "partition"]
        for table in TABLES:
            columns += [f"{name} ({table.lower()})" for name in names]
        rows = [
            [site, partition, *resolved, *averaged]
            for partition, site, (resolved, averaged) in sites.site_rows(data, _paired_rows)
        ]
        return Table(columns=columns, rows=rows)


METHOD = Slac()
