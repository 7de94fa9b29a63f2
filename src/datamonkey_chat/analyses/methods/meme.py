"""MEME: per-site test for positive (diversifying) selection, pervasive or episodic.

MEME lets beta vary across branches at each site (a beta- and a beta+ class) and tests whether
the beta+ class exceeds alpha on some proportion of branches; so it finds sites under episodic
selection (on a few branches) as well as pervasive selection, and HyPhy's documentation calls it
its most powerful site-level test for positive selection. It does not test for purifying
selection.

Which branches: for each tested branch at a site HyPhy stores the posterior probability of the
beta+ class (`branch attributes.<n>.<branch>.Posterior prob omega class by site`, rows beta- and
beta+, one column per site of the partition). MEME.bf's empirical Bayes factor is the posterior
odds of beta+ over its prior odds, (1 - p-)/p- with p- the site's beta- weight; it counts
branches with EBF >= 100 in `# branches under selection`. We list those branches by name.
"""

from __future__ import annotations

import math
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
    listing,
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

NO_MULTIHIT = "HyPhy 2.5.47's MEME has no multiple-hit models"
EBF_THRESHOLD = 100.0  # MEME.bf counts a branch as under selection at EBF >= 100
POSTERIOR_KEY = "Posterior prob omega class by site"
FEW_FOR_ASYMPTOTICS = 30  # MEME.bf recommends resampling below this many sequences


class MemeOptions(MethodOptions):
    """Upstream's MemeRequest fields, plus `pvalue` and `branches` (HyPhy options)."""

    genetic_code: GeneticCode = "Universal"
    multiple_hits: Annotated[MultipleHits, only_default("multiple_hits", "None", NO_MULTIHIT)] = (
        Field("None", description="Multiple-hit model: only 'None' (HyPhy 2.5.47)")
    )
    site_multihit: Annotated[str, only_default("site_multihit", "Estimate", NO_MULTIHIT)] = Field(
        "Estimate", description="Site-level multiple-hit rates: only 'Estimate' (HyPhy 2.5.47)"
    )
    rates: Annotated[
        int, only_default("rates", 2, "HyPhy 2.5.47's MEME has two beta classes (beta-, beta+)")
    ] = Field(2, description="Non-synonymous rate classes: MEME has two (beta-, beta+)")
    resample: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Parametric bootstrap replicates per site for the LRT's null distribution "
        "(0: asymptotic); much slower, recommended below 30 sequences",
    )
    impute_states: Annotated[
        YesNo, only_default("impute_states", "No", "HyPhy 2.5.47's MEME cannot impute states")
    ] = Field("No", description="Impute missing states: only 'No' (HyPhy 2.5.47)")
    # additive
    pvalue: PValue = Field(0.1, description="p-value threshold for calling a site selected")
    branches: BranchList


class MemeSites(sites.SelectedSites):
    """MEME's verdict; `branches_by_site` maps a selected site to its branches at EBF >= 100."""

    branches_by_site: dict[int, list[str]] = Field(default_factory=dict)


def _ebf(posterior_plus: float, weight_minus: float) -> float:
    """MEME.bf's empirical Bayes factor for the beta+ class on one branch at one site."""
    if not 0 < weight_minus < 1 or not 0 <= posterior_plus < 1:
        return math.inf if posterior_plus >= 1 and 0 < weight_minus < 1 else math.nan
    return (posterior_plus / (1 - posterior_plus)) / ((1 - weight_minus) / weight_minus)


def _branch_posteriors(data: dict[str, Any], partition: int) -> dict[str, list[float]]:
    """branch -> posterior of beta+ per site of the partition (0-based within the partition)."""
    attributes = data.get("branch attributes", {})
    branches = attributes.get(str(partition), {}) if isinstance(attributes, dict) else {}
    found: dict[str, list[float]] = {}
    if not isinstance(branches, dict):
        return found
    for branch, values in branches.items():
        matrix = values.get(POSTERIOR_KEY) if isinstance(values, dict) else None
        if isinstance(matrix, list) and len(matrix) == 2 and isinstance(matrix[1], list):
            found[branch] = [number(v) for v in matrix[1]]
    return found


def branches_under_selection(data: dict[str, Any]) -> dict[tuple[int, int], list[str]]:
    """(partition, 1-based alignment codon) -> branches with EBF >= 100, for every site."""
    names = sites.headers(data)
    weight = sites.column(names, "p<sup>-</sup>", "p-")
    result: dict[tuple[int, int], list[str]] = {}
    posteriors: dict[int, dict[str, list[float]]] = {}
    index_in_partition: dict[int, int] = {}
    for partition, site, row in sites.site_rows(data):
        if partition not in posteriors:
            posteriors[partition] = _branch_posteriors(data, partition)
        i = index_in_partition.get(partition, 0)
        index_in_partition[partition] = i + 1
        w = number(row[weight])
        result[(partition, site)] = sorted(
            branch
            for branch, values in posteriors[partition].items()
            if i < len(values) and _ebf(values[i], w) >= EBF_THRESHOLD
        )
    return result


class Meme(HyPhyMethod):
    id = "meme"
    keyword = "meme"
    name = "MEME"
    Options = MemeOptions
    summary_model = MemeSites
    plots_shown = ("LRT p-value per codon (log scale), coloured by the verdict at the threshold",)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        return branch_problems(options.branches, context, self.name)

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "pvalue": options.pvalue,
            "resample": options.resample,
        }
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        names = sites.headers(data)
        a = sites.column(names, "&alpha;", "alpha")
        bp = sites.column(names, "&beta;<sup>+</sup>", "beta+")
        wp = sites.column(names, "p<sup>+</sup>", "p+")
        lrt, p = sites.column(names, "LRT"), sites.column(names, "p-value")
        count = sites.column(names, "# branches under selection")
        threshold = float(options.pvalue)

        def verdict(row: sites.Row) -> sites.Verdict:
            # MEME tests episodic positive selection only: no negative verdict
            return "positive" if number(row[p]) <= threshold else "none"

        def fields(row: sites.Row) -> dict[str, Any]:
            n_branches = number(row[count])
            return {
                "alpha": rounded(number(row[a])),
                "beta_plus": rounded(number(row[bp])),
                "weight_plus": rounded(number(row[wp])),
                "lrt": rounded(number(row[lrt])),
                "p": rounded(number(row[p])),
                "branches": int(n_branches) if math.isfinite(n_branches) else None,
            }

        selection = sites.select_sites(data, verdict, fields)
        by_site = branches_under_selection(data)
        chosen = {
            site: by_site.get((partition, site), [])
            for partition, site, _ in selection.positive_rows
        }
        test = f"likelihood-ratio test p <= {threshold:g}"
        sequences, codons = input_counts(data)
        positive = selection.positive
        text = self._text(positive, len(selection.series), test, chosen)
        return MemeSites(
            method=self.name,
            summary_text=text,
            caveats=self._caveats(data, len(positive), sequences, options),
            sequences=sequences,
            codons=codons,
            test=test,
            **selection.selected_fields(),
            branches_by_site=chosen,
        )

    def _text(
        self, positive: list[int], tested: int, test: str, chosen: dict[int, list[str]]
    ) -> str:
        noun = "site" if len(positive) == 1 else "sites"
        text = (
            f"MEME found {len(positive)} {noun} under positive (diversifying) selection, "
            f"pervasive or episodic ({test}) among {tested} codons."
        )
        if positive:
            text += f" Sites: {listing(positive)}."
            located = [f"{s} ({listing(b, 5)})" for s, b in chosen.items() if b]
            if located:
                text += (
                    " Branches with strong support (empirical Bayes factor >= 100) at these "
                    f"sites: {listing(located, 10)}."
                )
        return text

    def _caveats(
        self, data: dict[str, Any], found: int, sequences: int | None, options: Any
    ) -> list[str]:
        caveats = sites.site_caveats(data, found)
        if sequences is not None and sequences < FEW_FOR_ASYMPTOTICS and options.resample == 0:
            caveats.append(
                f"With fewer than {FEW_FOR_ASYMPTOTICS} sequences HyPhy recommends the "
                "parametric bootstrap (option resample, e.g. 50) over the asymptotic p-values."
            )
        caveats.append(
            "Which branches carry the signal (empirical Bayes factor >= 100) is a rough hint; "
            "the site-level p-value is the test. MEME does not test for purifying selection."
        )
        return caveats

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, MemeSites)
        return [
            sites.site_plot(
                f"MEME: p-value per codon ({summary.test}; lower is stronger)",
                summary.sites,
                "p",
                "LRT p-value (log scale)",
                y_scale={"type": "log", "reverse": True},
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        table = sites.site_table(data)
        by_site = branches_under_selection(data)
        rows = [[*row, ";".join(by_site.get((row[1], row[0]), []))] for row in table.rows]
        return Table(columns=[*table.columns, "branches with EBF >= 100"], rows=rows)


METHOD = Meme()
