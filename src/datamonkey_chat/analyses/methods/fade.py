"""FADE: protein sites evolving towards a particular residue (directional selection).

HyPhy reports, per target residue and site, the rate, the bias towards that residue, the
posterior probability of bias > 0 and its empirical Bayes factor (`MLE.content.<residue>.
<partition>`, rows in the order of `MLE.headers`). FADE needs a rooted tree (HyPhy asserts
it); branch labels are optional (HyPhy's default tests all branches). The Bayes factor
threshold is ours (HyPhy 2.5 has no flag for it; its screen report uses 100).
"""

from __future__ import annotations

import math
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
    listing,
    number,
    plot,
    plural,
    power_caveats,
    rounded,
    tooltip,
)
from datamonkey_chat.analyses.methods.options import (
    BranchList,
    branch_problems,
    branches_arguments,
)
from datamonkey_chat.analyses.validation import MethodRequirements, Problem

MODELS = (
    "GTR",
    "LG",
    "WAG",
    "JTT",
    "JC69",
    "mtMet",
    "mtVer",
    "mtInv",
    "gcpREV",
    "HIVBm",
    "HIVWm",
)
METHODS = ("Variational-Bayes", "Collapsed-Gibbs", "Metropolis-Hastings")


class FadeOptions(MethodOptions):
    """Upstream's FadeRequest field (`bayes_factor_threshold`), plus HyPhy's FADE settings
    (additive): branches, grid, model, method, concentration_parameter."""

    bayes_factor_threshold: Annotated[int, Field(ge=1, le=1000)] = Field(
        100, description="Bayes factor at or above which a site/residue is reported"
    )
    branches: BranchList
    grid: Annotated[int, Field(ge=5, le=50)] = Field(
        20, description="Grid points per dimension (the grid has grid^2 points)"
    )
    model: Literal[MODELS] = Field(  # type: ignore[valid-type]
        "GTR", description="Baseline protein model (GTR estimates 189 parameters; slow)"
    )
    method: Literal[METHODS] = Field(  # type: ignore[valid-type]
        "Variational-Bayes", description="Posterior estimation (Variational-Bayes is fastest)"
    )
    concentration_parameter: Annotated[float, Field(ge=0.001, le=1)] = Field(
        0.5, description="Concentration parameter of the Dirichlet prior"
    )


class FadeSummary(Summary):
    test: str
    residues_tested: int
    site_count: int
    selected: list[dict[str, Any]] = Field(
        default_factory=list, description="(site, residue, Bayes factor) at/above the threshold"
    )
    selected_sites: list[int] = Field(default_factory=list)
    sites: list[dict[str, Any]] = Field(
        default_factory=list, description="site x residue Bayes factors (plot series)"
    )


def _headers(data: dict[str, Any]) -> list[str]:
    try:
        return [str(h[0]) for h in data["MLE"]["headers"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise SummaryError("result JSON has no MLE.headers") from exc


def _coverage(data: dict[str, Any], partition: str, n: int) -> list[int]:
    try:
        return [int(s) + 1 for s in data["data partitions"][partition]["coverage"][0]]
    except (KeyError, IndexError, TypeError, ValueError):
        return list(range(1, n + 1))


def site_residue_rows(data: dict[str, Any]) -> list[tuple[int, str, list[Any]]]:
    """(1-based site, target residue, row) for every residue and partition."""
    content = data.get("MLE", {}).get("content")
    if not isinstance(content, dict) or not content:
        raise SummaryError("result JSON has no MLE.content")
    rows: list[tuple[int, str, list[Any]]] = []
    for residue in sorted(content):
        partitions = content[residue]
        if not isinstance(partitions, dict):
            continue
        offset = 0
        for key in sorted(partitions, key=int):
            table = partitions[key]
            if not isinstance(table, list):
                continue
            sites = _coverage(data, key, len(table))
            if sites == list(range(1, len(table) + 1)):
                sites = [offset + s for s in sites]
            offset += len(table)
            rows.extend((site, residue, list(row)) for site, row in zip(sites, table, strict=False))
    return rows


def _annotations(data: dict[str, Any]) -> dict[int, tuple[Any, Any]]:
    """1-based site -> (composition, substitutions) from HyPhy's site annotations."""
    try:
        annotations = data["site annotations"]["site annotations"]
    except (KeyError, TypeError):
        return {}
    result: dict[int, tuple[Any, Any]] = {}
    if not isinstance(annotations, dict):
        return result
    for key in sorted(annotations, key=int):
        entries = annotations[key]
        if not isinstance(entries, list):
            continue
        for site, entry in zip(_coverage(data, key, len(entries)), entries, strict=False):
            if isinstance(entry, list) and len(entry) >= 2:
                result[site] = (entry[0], entry[1])
    return result


class Fade(HyPhyMethod):
    id = "fade"
    keyword = "fade"
    name = "FADE"
    Options = FadeOptions
    summary_model = FadeSummary
    plots_shown = ("Bayes factor per site and target residue (heat map)",)
    requirements = MethodRequirements(
        data_types=frozenset({"protein"}), needs_codons=False, needs_tree=True
    )

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        problems = branch_problems(options.branches, context, self.name)
        if context.tree_available and not context.tree_rooted:
            problems.append(
                Problem(
                    code="tree_not_rooted",
                    message="FADE needs a rooted tree (the root must have exactly two "
                    "children, e.g. ((A,B),(C,D)); ); this tree is unrooted, or there is none "
                    "(a neighbour-joining tree would be unrooted): upload a rooted tree",
                )
            )
        return problems

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        args: dict[str, OptionValue] = {
            "grid": options.grid,
            "model": options.model,
            "method": options.method,
            "concentration_parameter": options.concentration_parameter,
        }
        args.update(branches_arguments(options.branches, context.branch_sets))
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> FadeSummary:
        names = _headers(data)
        try:
            bf_column = names.index("BayesFactor[bias>0]")
            bias_column = names.index("bias")
        except ValueError as exc:
            raise SummaryError("FADE's MLE.headers lack BayesFactor[bias>0] or bias") from exc
        threshold = float(options.bayes_factor_threshold)
        series: list[dict[str, Any]] = []
        selected: list[dict[str, Any]] = []
        residues: set[str] = set()
        for site, residue, row in site_residue_rows(data):
            residues.add(residue)
            bf = number(row[bf_column]) if len(row) > bf_column else math.nan
            bias = number(row[bias_column]) if len(row) > bias_column else math.nan
            point = {"site": site, "residue": residue, "bf": rounded(bf), "bias": rounded(bias)}
            series.append(point)
            if bf >= threshold:
                selected.append(point)
        selected.sort(key=lambda p: (p["site"], p["residue"]))
        selected_sites = sorted({p["site"] for p in selected})
        test = f"empirical Bayes factor >= {threshold:g}"
        sequences, sites = input_counts(data)
        site_count = sites if sites is not None else len({p["site"] for p in series})
        text = (
            f"FADE found {plural(len(selected_sites), 'site')} with evidence of directional "
            f"selection towards a residue ({test}) among {plural(site_count, 'site')} and "
            f"{len(residues)} target residues."
        )
        if selected:
            text += " " + listing(
                [f"site {p['site']} towards {p['residue']} (BF {p['bf']:.3g})" for p in selected],
                10,
            )
            text += "."
        caveats = power_caveats(sequences)
        if not selected:
            caveats.append(
                "No site reached the Bayes factor threshold: this is no evidence of directional "
                "selection, not evidence that there was none."
            )
        caveats.append(
            f"Each site is tested for {len(residues)} residues; a Bayes factor is not a "
            "p-value, and a large one at a few sites can arise from alignment errors: check "
            "the substitutions at reported sites."
        )
        return FadeSummary(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=sequences,
            codons=None,
            test=test,
            residues_tested=len(residues),
            site_count=site_count,
            selected=selected,
            selected_sites=selected_sites,
            sites=series,
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, FadeSummary)
        return [
            plot(
                f"FADE: Bayes factor per site and target residue ({summary.test})",
                summary.sites,
                {"type": "rect"},
                {
                    "x": {
                        "field": "site",
                        "type": "ordinal",
                        "title": "Site",
                        "axis": {"labelOverlap": True},
                    },
                    "y": {"field": "residue", "type": "nominal", "title": "Target residue"},
                    "color": {
                        "field": "bf_shown",
                        "type": "quantitative",
                        "title": "Bayes factor",
                        "scale": {"type": "log", "scheme": "reds"},
                    },
                    "tooltip": tooltip(("site", "residue", "bf", "bias")),
                },
                height=320,
                transform=[{"calculate": "max(datum.bf, 1e-3)", "as": "bf_shown"}],
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        names = _headers(data)
        annotations = _annotations(data)
        rows = [
            [site, residue, *row, *annotations.get(site, (None, None))]
            for site, residue, row in site_residue_rows(data)
        ]
        rows.sort(key=lambda r: (r[0], r[1]))
        return Table(
            columns=["site", "target residue", *names, "composition", "substitutions"], rows=rows
        )


METHOD = Fade()
