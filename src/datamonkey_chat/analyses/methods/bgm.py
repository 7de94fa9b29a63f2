"""BGM (Spidermonkey): pairs of sites that co-evolve, from substitutions mapped onto the tree.

HyPhy's BGM.bf writes one row per pair of analysed sites in `MLE.content` (a flat list, site
numbers already 1-based: codons for codon data, columns otherwise) with the posterior
probabilities of each direction of dependence and of any dependence (`P [Site 1 <–> Site 2]`,
the sum of the two), and the substitution counts. It reports pairs at posterior >= 0.5; the
threshold is an option here. With fewer than three sites carrying enough substitutions
BGM.bf infers no network and writes no table.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

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
from datamonkey_chat.analyses.methods.options import STANDARD_SETS, GeneticCode
from datamonkey_chat.analyses.validation import MethodRequirements, Problem

PLOT_FLOOR = 0.1  # pairs below this posterior are left out of the plot (all are in the table)
DataType = Literal["nucleotide", "amino-acid", "codon"]


class BgmOptions(MethodOptions):
    """Upstream's BgmRequest fields with HyPhy's ranges, plus the reporting threshold."""

    branches: Annotated[str, Field(max_length=100)] = Field(
        "All",
        description="Branches whose substitutions are used: All, Internal, Leaves or a "
        "branch-set label from the tree",
    )
    genetic_code: GeneticCode = "Universal"
    data_type: DataType = Field("codon", description="How to read the alignment")
    steps: Annotated[int, Field(ge=1, le=1_000_000_000)] = Field(
        100_000, description="MCMC steps to sample"
    )
    burn_in: Annotated[int, Field(ge=0, le=1_000_000_000)] = Field(
        10_000, description="MCMC steps discarded as burn-in"
    )
    samples: Annotated[int, Field(ge=100)] = Field(
        100, description="Samples extracted from the chain (HyPhy needs at least 100)"
    )
    max_parents: Annotated[int, Field(ge=1, le=3)] = Field(
        1, description="Maximum number of parents per node of the network"
    )
    min_subs: Annotated[int, Field(ge=1, le=100_000)] = Field(
        1, description="Minimum substitutions for a site to be analysed"
    )
    # additive: BGM.bf reports at 0.5 and has no option for it
    posterior: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="Posterior probability of dependence for a pair to be reported"
    )

    @model_validator(mode="after")
    def _chain_fits(self) -> BgmOptions:
        if self.samples > self.steps - self.burn_in:
            raise ValueError("samples must not exceed steps - burn_in (HyPhy's bound)")
        return self


class CoevolvingPairs(Summary):
    series_fields = ("pair_series",)

    threshold: float
    analysed_sites: int = Field(description="sites with at least min_subs substitutions")
    pair_count: int = 0
    pairs: list[dict[str, Any]] = Field(
        default_factory=list, description="pairs at posterior >= threshold, strongest first"
    )
    pair_series: list[dict[str, Any]] = Field(
        default_factory=list, description=f"pairs at posterior >= {PLOT_FLOOR} for the plot"
    )


COLUMNS = {
    "site_1": "Site 1",
    "site_2": "Site 2",
    "p_1_to_2": "P [Site 1 –> Site 2]",
    "p_2_to_1": "P [Site 2 –> Site 1]",
    "posterior": "P [Site 1 <–> Site 2]",
    "subs_1": "Site 1 subs",
    "subs_2": "Site 2 subs",
    "shared_subs": "Shared subs",
}


def _header_names(data: dict[str, Any]) -> list[str]:
    try:
        return [str(h[0]) for h in data["MLE"]["headers"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise SummaryError("BGM JSON has no MLE.headers") from exc


def _rows(data: dict[str, Any]) -> list[dict[str, float]]:
    """Pairs as dicts keyed like COLUMNS; [] when BGM inferred no network."""
    if "MLE" not in data:
        return []
    names = _header_names(data)
    content = data["MLE"].get("content")
    if not isinstance(content, list):
        raise SummaryError("BGM JSON's MLE.content is not a table")
    try:
        index = {key: names.index(name) for key, name in COLUMNS.items()}
    except ValueError as exc:
        raise SummaryError(f"BGM JSON lacks a column: {exc}") from exc
    return [{key: number(row[i]) for key, i in index.items()} for row in content]


def _sites_analysed(rows: list[dict[str, float]]) -> int:
    # n sites give n(n-1)/2 pairs; read the sites directly rather than invert that
    return len({r["site_1"] for r in rows} | {r["site_2"] for r in rows})


def _pair(row: dict[str, float]) -> dict[str, Any]:
    return {
        "site_1": int(row["site_1"]),
        "site_2": int(row["site_2"]),
        "posterior": rounded(row["posterior"]),
        "p_1_to_2": rounded(row["p_1_to_2"]),
        "p_2_to_1": rounded(row["p_2_to_1"]),
        "subs_1": int(row["subs_1"]) if math.isfinite(row["subs_1"]) else None,
        "subs_2": int(row["subs_2"]) if math.isfinite(row["subs_2"]) else None,
        "shared_subs": int(row["shared_subs"]) if math.isfinite(row["shared_subs"]) else None,
    }


class Bgm(HyPhyMethod):
    id = "bgm"
    keyword = "bgm"
    name = "BGM"
    Options = BgmOptions
    summary_model = CoevolvingPairs
    plots_shown = (
        "pairs of sites (site 1 vs site 2), sized and coloured by posterior of dependence",
    )
    requirements = MethodRequirements(
        data_types=frozenset({"nucleotide", "protein"}), needs_codons=False
    )
    table_unit = "pair"

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        problems: list[Problem] = []
        kind = context.alignment.data_type
        if options.data_type == "amino-acid" and kind == "nucleotide":
            problems.append(
                Problem(
                    code="wrong_data_type",
                    message="BGM with data_type 'amino-acid' needs a protein alignment; this "
                    "is a nucleotide alignment (use data_type 'codon' or 'nucleotide')",
                )
            )
        elif options.data_type != "amino-acid" and kind == "protein":
            problems.append(
                Problem(
                    code="wrong_data_type",
                    message=f"BGM with data_type '{options.data_type}' needs a nucleotide "
                    "alignment; this is a protein alignment (use data_type 'amino-acid')",
                )
            )
        elif options.data_type == "codon":
            problems += [
                p.model_copy(
                    update={"severity": "error", "message": f"BGM codon data: {p.message}"}
                )
                for p in context.alignment.problems
                if p.code in ("not_codon_aligned", "stop_codon")
            ]
        label = options.branches.strip()
        if label.casefold() not in STANDARD_SETS and context.branch_sets.hyphy(label) is None:
            known = ", ".join(context.branch_sets.names()) or "none"
            problems.append(
                Problem(
                    code="branch_label_missing",
                    message=f"The tree has no branches labelled {label}; its labels are: {known}",
                )
            )
        return problems

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        label = options.branches.strip()
        branches = STANDARD_SETS.get(label.casefold()) or context.branch_sets.hyphy(label)
        args: dict[str, OptionValue] = {
            "type": options.data_type,
            "steps": options.steps,
            "burn-in": options.burn_in,
            "samples": options.samples,
            "max-parents": options.max_parents,
            "min-subs": options.min_subs,
        }
        if options.data_type == "codon":
            args["code"] = options.genetic_code
        if branches and branches != "All":
            args["branches"] = branches
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        threshold = float(options.posterior)
        rows = _rows(data)
        chosen = sorted(
            (r for r in rows if r["posterior"] >= threshold),
            key=lambda r: (-r["posterior"], r["site_1"], r["site_2"]),
        )
        pairs = [_pair(r) for r in chosen]
        analysed = _sites_analysed(rows)
        sequences, sites = input_counts(data)
        unit = "codons" if options.data_type == "codon" else "sites"
        if not rows:
            text = (
                "BGM inferred no network: fewer than three sites had at least "
                f"{options.min_subs} substitution(s) on the tested branches."
            )
        else:
            text = (
                f"BGM found {plural(len(pairs), 'pair')} of co-evolving sites (posterior "
                f"probability of dependence >= {threshold:g}) among {analysed} {unit} with at "
                f"least {options.min_subs} substitution(s)."
            )
            if pairs:
                text += " Pairs: " + listing(
                    [f"{p['site_1']}-{p['site_2']} ({p['posterior']:.2f})" for p in pairs]
                )
                text += "."
        return CoevolvingPairs(
            method=self.name,
            summary_text=text,
            caveats=self._caveats(data, sequences, len(pairs)),
            sequences=sequences,
            codons=sites if options.data_type == "codon" else None,
            threshold=threshold,
            analysed_sites=analysed,
            pair_count=len(pairs),
            pairs=pairs,
            pair_series=[_pair(r) for r in rows if r["posterior"] >= PLOT_FLOOR],
        )

    def _caveats(self, data: dict[str, Any], sequences: int | None, found: int) -> list[str]:
        caveats = power_caveats(sequences)
        settings = data.get("settings", {})
        steps = settings.get("steps") if isinstance(settings, dict) else None
        caveats.append(
            "Posteriors come from an MCMC sample"
            + (f" of {int(steps)} steps" if isinstance(steps, int | float) else "")
            + ": rerun with more steps (or another run) to check that strong pairs stay strong."
        )
        caveats.append(
            "Dependence means substitutions at the two sites fall on the same branches more "
            "often than chance; it suggests, but does not prove, functional co-evolution."
        )
        if found == 0:
            caveats.append(
                "No pair passed the threshold: this is no evidence of co-evolution, not "
                "evidence that there is none."
            )
        return caveats

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, CoevolvingPairs)
        return [
            plot(
                f"BGM: pairs of sites by posterior probability of dependence "
                f"(pairs >= {PLOT_FLOOR:g} shown; reported at >= {summary.threshold:g})",
                summary.pair_series,
                {"type": "circle"},
                {
                    "x": {"field": "site_1", "type": "quantitative", "title": "Site 1"},
                    "y": {"field": "site_2", "type": "quantitative", "title": "Site 2"},
                    "size": {
                        "field": "posterior",
                        "type": "quantitative",
                        "title": "P [dependence]",
                        "scale": {"domain": [0, 1]},
                    },
                    "color": {
                        "field": "posterior",
                        "type": "quantitative",
                        "title": "P [dependence]",
                        "scale": {"domain": [0, 1], "scheme": "reds"},
                    },
                    "tooltip": tooltip(("site_1", "site_2", "posterior", "shared_subs")),
                },
                height=320,
            )
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        if "MLE" not in data:
            return Table(columns=list(COLUMNS.values()), rows=[])
        names = _header_names(data)
        content = data["MLE"].get("content")
        if not isinstance(content, list):
            raise SummaryError("BGM JSON's MLE.content is not a table")
        return Table(columns=names, rows=[list(row) for row in content])


METHOD = Bgm()
