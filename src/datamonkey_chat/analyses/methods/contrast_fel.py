"""Contrast-FEL: does selective pressure (dN/dS, omega) at a site differ between sets of branches?

At each site HyPhy fits one synonymous rate (alpha) shared by all branches and one
non-synonymous rate (beta) per branch set, then tests whether the betas are equal; with alpha
shared, that compares omega = beta/alpha between the sets. `MLE.content.0` has, per site,
`alpha`, `beta (<set>)` for every set (and `background`, the unlabelled branches), `subs (<set>)`,
`P-value (overall)` (all tested sets equal), `Q-value (overall)` (Benjamini-Hochberg over
sites), with three or more sets `P-value for <a> vs <b>` per pair, `Permutation p-value` and
`Total branch length`. HyPhy calls a site significant for a test at p <= `p_value` and reports
the sites whose overall q-value is <= `q_value`.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

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
    plural,
    rounded,
)
from datamonkey_chat.analyses.methods.options import GeneticCode, PValue, YesNo
from datamonkey_chat.analyses.validation import Problem

# names HyPhy's contrast-fel.bf offers besides the tree's labels
SPECIAL_SETS = {
    "internal": "Internal branches",
    "internal branches": "Internal branches",
    "leaves": "Terminal branches",
    "terminal": "Terminal branches",
    "terminal branches": "Terminal branches",
    "unlabeled": "Unlabeled branches",
    "unlabelled": "Unlabeled branches",
    "unlabeled branches": "Unlabeled branches",
    "background": "Unlabeled branches",
}
BETA = re.compile(r"^beta \((.+)\)$")
PAIR = re.compile(r"^P-value for (.+) vs (.+)$")


def _clean_sets(values: list[str]) -> list[str]:
    cleaned = [v.strip() for v in values if v and v.strip()]
    if len(cleaned) > 20:
        raise ValueError("at most 20 branch sets")
    return cleaned


class ContrastFelOptions(MethodOptions):
    """Upstream's ContrastFelRequest fields (HyPhy's ranges for the two thresholds)."""

    branch_sets: Annotated[
        list[Annotated[str, Field(max_length=100)]],
        AfterValidator(_clean_sets),
        Field(
            default_factory=list,
            description="Branch sets to compare: labels from the tree (e.g. 'Source', 'Test' "
            "for branches tagged {Source}, {Test}); one set is compared with all other "
            "branches. Also 'Internal', 'Leaves', 'Unlabeled'.",
        ),
    ]
    genetic_code: GeneticCode = "Universal"
    srv: YesNo = Field("Yes", description="Synonymous rate variation across sites")
    permutations: YesNo = Field(
        "Yes", description="Label-permutation test for the sites significant by the LRT"
    )
    p_value: PValue = Field(0.05, description="p-value threshold for the site tests")
    q_value: PValue = Field(0.2, description="False discovery rate (q-value) threshold")


class ContrastSites(Summary):
    branch_sets: list[str] = Field(description="the sets compared, as HyPhy names them")
    p_threshold: float
    q_threshold: float
    tested_sites: int
    significant_sites: list[int] = Field(
        default_factory=list, description="overall p <= p_threshold"
    )
    fdr_sites: list[int] = Field(default_factory=list, description="overall q <= q_threshold")
    permutation_supported: list[int] = Field(
        default_factory=list,
        description="significant sites whose permutation p-value is also <= p_threshold",
    )
    pairwise: dict[str, list[int]] = Field(
        default_factory=dict, description="pair of sets -> sites with p <= p_threshold"
    )
    omega: dict[str, float | None] = Field(
        default_factory=dict, description="alignment-wide dN/dS per set (MG94xREV fit)"
    )
    sites: list[dict[str, Any]] = Field(default_factory=list, description="per-site plot series")


def _set_names(names: list[str]) -> list[str]:
    return [m.group(1) for n in names if (m := BETA.match(n))]


def _omegas(data: dict[str, Any]) -> dict[str, float | None]:
    """dN/dS per set from the global MG94xREV fit ('... rate ratio for *A*')."""
    fits = data.get("fits", {})
    fit = fits.get("Global MG94xREV", {}) if isinstance(fits, dict) else {}
    rates = fit.get("Rate Distributions", {}) if isinstance(fit, dict) else {}
    found: dict[str, float | None] = {}
    if isinstance(rates, dict):
        for key, value in rates.items():
            m = re.search(r"rate ratio for \*(.+)\*", key)
            estimate = value[0][0] if isinstance(value, list) and value and value[0] else value
            if m:
                found[m.group(1)] = rounded(number(estimate))
    return found


class ContrastFel(HyPhyMethod):
    id = "contrast-fel"
    keyword = "contrast-fel"
    name = "Contrast-FEL"
    Options = ContrastFelOptions
    summary_model = ContrastSites
    plots_shown = ("-log10 p of the overall test per codon, significant sites in red",)

    def _hyphy_set(self, label: str, context: InputContext) -> str | None:
        return SPECIAL_SETS.get(label.casefold()) or context.branch_sets.hyphy(label)

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        if not options.branch_sets:
            known = ", ".join(context.branch_sets.names()) or "none"
            return [
                Problem(
                    code="branch_sets_required",
                    message="Contrast-FEL compares sets of branches: name at least one labelled "
                    f"set in branch_sets (one set is compared with all other branches); the "
                    f"tree's labels are: {known}",
                )
            ]
        missing = [s for s in options.branch_sets if self._hyphy_set(s, context) is None]
        if missing:
            known = ", ".join(context.branch_sets.names()) or "none"
            return [
                Problem(
                    code="branch_label_missing",
                    message=f"The tree has no branches labelled {', '.join(missing)}; "
                    f"its labels are: {known}",
                )
            ]
        return []

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        chosen = [self._hyphy_set(s, context) or s for s in options.branch_sets]
        unique = list(dict.fromkeys(chosen))
        args: dict[str, OptionValue] = {
            "code": options.genetic_code,
            "srv": options.srv,
            "permutations": options.permutations,
            "p-value": options.p_value,
            "q-value": options.q_value,
        }
        # HyPhy takes one `--branch-set X` per set: several sets need the flag repeated, so
        # they are given as a list (the command builder repeats the flag for a list).
        args["branch-set"] = unique[0] if len(unique) == 1 else unique
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        names = sites.headers(data)
        sets = [s for s in _set_names(names) if s != "background"]
        p = sites.column(names, "P-value (overall)")
        q = sites.column(names, "Q-value (overall)")
        perm = sites.column(names, "Permutation p-value")
        alpha = sites.column(names, "alpha")
        betas = {s: names.index(f"beta ({s})") for s in _set_names(names)}
        pairs = {
            f"{m.group(1)} vs {m.group(2)}": i for i, n in enumerate(names) if (m := PAIR.match(n))
        }
        p_max, q_max = float(options.p_value), float(options.q_value)
        significant, fdr, supported, series = [], [], [], []
        pairwise: dict[str, list[int]] = {pair: [] for pair in pairs}
        for _, site, row in sites.site_rows(data):
            pv, qv, permutation = number(row[p]), number(row[q]), number(row[perm])
            if pv <= p_max:
                significant.append(site)
                if 0 <= permutation <= p_max:  # HyPhy writes -1 where it did not permute
                    supported.append(site)
            if qv <= q_max:
                fdr.append(site)
            for pair, i in pairs.items():
                if number(row[i]) <= p_max:
                    pairwise[pair].append(site)
            point: dict[str, Any] = {
                "site": site,
                "alpha": rounded(number(row[alpha])),
                "p": rounded(pv),
                "q": rounded(qv),
                "permutation_p": rounded(permutation) if permutation >= 0 else None,
                "selection": "different" if pv <= p_max else "none",
            }
            point.update({f"beta {s}": rounded(number(row[i])) for s, i in betas.items()})
            series.append(point)
        sequences, codons = input_counts(data)
        summary = ContrastSites(
            method=self.name,
            summary_text="",
            caveats=self._caveats(data, significant, fdr, options),
            sequences=sequences,
            codons=codons,
            branch_sets=sets,
            p_threshold=p_max,
            q_threshold=q_max,
            tested_sites=len(series),
            significant_sites=significant,
            fdr_sites=fdr,
            permutation_supported=supported,
            pairwise=pairwise,
            omega=_omegas(data),
            sites=series,
        )
        summary.summary_text = self._text(summary, options)
        return summary

    def _text(self, s: ContrastSites, options: Any) -> str:
        compared = (
            " and ".join(s.branch_sets)
            if len(s.branch_sets) > 1
            else (
                f"{s.branch_sets[0]} and the other branches" if s.branch_sets else "the branch sets"
            )
        )
        text = (
            f"Contrast-FEL compared dN/dS (omega) between {compared} site by site: "
            f"{plural(len(s.significant_sites), 'site')} differ at p <= {s.p_threshold:g} "
            f"among {s.tested_sites} codons"
        )
        text += f"; {plural(len(s.fdr_sites), 'site')} pass the false discovery rate "
        text += f"threshold q <= {s.q_threshold:g}."
        if s.significant_sites:
            text += f" Sites: {listing(s.significant_sites)}."
            if options.permutations == "Yes":
                text += (
                    f" {len(s.permutation_supported)} of them are also supported by the "
                    f"label-permutation test (p <= {s.p_threshold:g})."
                )
        for pair, found in s.pairwise.items():
            text += f" {pair}: {plural(len(found), 'site')}."
        known = {k: v for k, v in s.omega.items() if v is not None}
        if known:
            text += " Alignment-wide dN/dS: " + ", ".join(f"{k} {v:.3g}" for k, v in known.items())
            text += "."
        return text

    def _caveats(
        self, data: dict[str, Any], significant: list[int], fdr: list[int], options: Any
    ) -> list[str]:
        caveats = sites.site_caveats(data, len(significant))
        if not significant:
            caveats[-1] = (
                "No site passed the threshold: this is no evidence that selective pressure "
                "differs between the sets, not evidence that it is the same."
            )
        both = [site for site in significant if site in set(fdr)]
        if len(both) < len(significant):
            caveats.append(
                f"Of {len(significant)} sites at p <= {options.p_value:g}, {len(both)} also pass "
                f"the false discovery rate threshold q <= {options.q_value:g}: with one test per "
                "site some nominal hits are expected by chance."
            )
        caveats.append(
            "Sets with few branches or short total length carry little information; HyPhy "
            "sets p-values to 1 when a set's total branch length is 0."
        )
        return caveats

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, ContrastSites)
        values = [{**s, "minus_log10_p": _minus_log10(s["p"])} for s in summary.sites]
        spec = sites.site_plot(
            f"Contrast-FEL: evidence that dN/dS differs between {', '.join(summary.branch_sets)}"
            f" (p <= {summary.p_threshold:g} in red)",
            values,
            "minus_log10_p",
            "-log10 p (overall)",
        )
        spec["encoding"]["color"] = {
            "field": "selection",
            "type": "nominal",
            "title": f"p <= {summary.p_threshold:g}",
            "scale": {"domain": ["different", "none"], "range": ["#d62728", "#bbbbbb"]},
        }
        return [spec]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        return sites.site_table(data)


def _minus_log10(p: float | None) -> float | None:
    if p is None or p <= 0:
        return None
    return round(-math.log10(p), 4)


METHOD = ContrastFel()
