"""GARD: recombination breakpoints that split the alignment into segments with different trees.

Coordinates. HyPhy's `breakpointData[i].bps` are [start, end] pairs built from 0-based site
indices: the first segment is [1, b0], the next [b0 + 1, b1], the last [b_last + 1, N]. Its
own partition export (`--output-lf`, a NEXUS file) writes the first segment as `1-(b0 + 1)`.
We report 1-based alignment columns as that export does: segment i ends after nucleotide
b_i + 1, so a breakpoint at 0-based index 311 is the boundary after nucleotide 312 (a codon
boundary). `siteBreakPointSupport` is keyed by the same 0-based indices.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field

from datamonkey_chat.analyses.methods.base import (
    SERIES_FIELDS,
    DerivedDataset,
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
from datamonkey_chat.analyses.methods.options import GeneticCode
from datamonkey_chat.analyses.validation import MethodRequirements, Problem

DATA_TYPES = {"Nucleotide": "nucleotide", "Protein": "amino-acid"}
RATE_VARIATION = {"None": "None", "General Discrete": "GDD", "Beta-Gamma": "Gamma"}
PROTEIN_MODELS = (
    "JTT",
    "LG",
    "WAG",
    "JC69",
    "mtMet",
    "mtVer",
    "mtInv",
    "gcpREV",
    "HIVBm",
    "HIVWm",
    "GTR",
)
# c-AIC differences below this are weak support (Burnham & Anderson's rule of thumb)
WEAK_CAIC = 10.0


class GardOptions(MethodOptions):
    """Upstream's GardRequest fields, plus `max_breakpoints` (additive)."""

    genetic_code: GeneticCode = "Universal"
    data_type: Literal["Nucleotide", "Protein"] = Field(
        "Nucleotide",
        description="Nucleotide or Protein: must match the alignment",
    )
    run_mode: Literal["Normal", "Faster"] = Field(
        "Normal", description="Faster: looser optimisation and convergence settings"
    )
    site_to_site_variation: Literal["None", "General Discrete", "Beta-Gamma"] = Field(
        "None", description="Site-to-site rate variation (HyPhy: None, GDD, Gamma)"
    )
    rate_classes: Annotated[int, Field(ge=2, le=10)] = Field(
        2, description="Rate classes when site_to_site_variation is not None"
    )
    model: Literal[PROTEIN_MODELS] = Field(  # type: ignore[valid-type]
        "JTT", description="Protein substitution model (protein data only)"
    )
    max_breakpoints: Annotated[int, Field(ge=1, le=100000)] = Field(
        10000, description="Maximum number of breakpoints to consider"
    )


class GardSummary(Summary):
    series_fields = (*SERIES_FIELDS, "support")  # plotted; the assistant reads the numbers above it

    breakpoint_count: int
    unit: Literal["nucleotide", "residue"]
    segments: list[dict[str, Any]] = Field(
        default_factory=list, description="1-based inclusive [start, end] per segment"
    )
    breakpoints: list[dict[str, Any]] = Field(
        default_factory=list,
        description="boundary after this 1-based column, codon position, model support",
    )
    caic_improvement_single_tree: float | None = Field(
        description="single-tree c-AIC minus the best model's (topologies differ if large)"
    )
    caic_improvement_no_breakpoints: float | None = Field(
        description="c-AIC of the model without breakpoints minus the best model's"
    )
    best_caic: float | None
    support: list[dict[str, Any]] = Field(
        default_factory=list, description="model-averaged support per potential breakpoint"
    )


def _matrix_pair(value: Any) -> tuple[int, int]:
    """HyPhy writes a 1x2 matrix as [[a, b]] (or [a, b])."""
    if isinstance(value, list) and value and isinstance(value[0], list):
        value = value[0]
    if not (isinstance(value, list) and len(value) >= 2):
        raise SummaryError("GARD breakpointData has a malformed 'bps'")
    return int(value[0]), int(value[1])


def segments(data: dict[str, Any]) -> list[tuple[int, int]]:
    """1-based inclusive (start, end) per segment, as HyPhy's partition export writes them."""
    blocks = data.get("breakpointData")
    if not isinstance(blocks, dict) or not blocks:
        raise SummaryError("result JSON has no 'breakpointData'")
    pairs = [_matrix_pair(blocks[k].get("bps")) for k in sorted(blocks, key=int)]
    _, sites = input_counts(data)
    last = sites if sites is not None else pairs[-1][1]
    if len(pairs) == 1:
        return [(1, last)]
    ends = [end + 1 for _, end in pairs[:-1]]  # 0-based breakpoint -> 1-based column
    starts = [1, *(e + 1 for e in ends)]
    return list(zip(starts, [*ends, last], strict=True))


def breakpoint_support(data: dict[str, Any]) -> dict[int, float]:
    """1-based column a boundary falls after -> HyPhy's model-averaged support."""
    support = data.get("siteBreakPointSupport")
    if not isinstance(support, dict):
        return {}
    result: dict[int, float] = {}
    for key, value in support.items():
        try:
            result[int(float(key)) + 1] = number(value)
        except ValueError:
            continue
    return result


def _codon_position(after: int) -> str:
    remainder = after % 3
    if remainder == 0:
        return f"between codons {after // 3} and {after // 3 + 1}"
    return f"inside codon {after // 3 + 1} (after its position {remainder})"


def partition_charsets(nexus: str) -> list[tuple[int, int]]:
    """(start, end) of each `CHARSET span_N = a-b;` in HyPhy's partition export."""
    return [
        (int(a), int(b))
        for a, b in re.findall(r"CHARSET\s+\S+\s*=\s*(\d+)\s*-\s*(\d+)\s*;", nexus, re.IGNORECASE)
    ]


def partitioned_alignment(best_gard: str) -> str:
    """The NEXUS partitioned alignment from HyPhy's `--output-lf` file (`<alignment>.best-gard`).

    HyPhy writes the alignment (DATA block), an ASSUMPTIONS block with one
    `CHARSET span_N = a-b;` per segment (1-based, inclusive) and a TREES block with one tree per
    segment, then its likelihood-function dump. We return the NEXUS blocks only: a file HyPhy's
    selection analyses read with one tree per partition. Tip names are those HyPhy was given.
    """
    end = best_gard.rfind("END;", 0, _lf_start(best_gard))
    if end < 0 or "CHARSET" not in best_gard.upper():
        raise SummaryError("GARD's partition file has no CHARSET/TREES blocks")
    text = best_gard[: end + len("END;")].strip()
    return text if text.upper().startswith("#NEXUS") else "#NEXUS\n" + text + "\n"


def _lf_start(text: str) -> int:
    """Where HyPhy's likelihood-function dump begins (after the NEXUS blocks), or the end."""
    match = re.search(r"^\s*(DataSet|LikelihoodFunction|Topology|Tree)\s", text, re.MULTILINE)
    trees = text.upper().find("BEGIN TREES")
    if match and match.start() > trees:
        return match.start()
    return len(text)


class Gard(HyPhyMethod):
    id = "gard"
    keyword = "gard"
    name = "GARD"
    Options = GardOptions
    requirements = MethodRequirements(
        data_types=frozenset({"nucleotide", "protein"}), needs_codons=False, needs_tree=False
    )
    table_unit = "segment"
    summary_model = GardSummary
    plots_shown = (
        "segments along the alignment",
        "model-averaged support for a breakpoint after each site",
    )

    def input_problems(self, options: Any, context: InputContext) -> list[Problem]:
        # the summary's wording (nucleotides and codons, or residues) follows data_type
        wanted = {"Nucleotide": "nucleotide", "Protein": "protein"}[options.data_type]
        actual = context.alignment.data_type
        if actual is not None and actual != wanted:
            fix = "Protein" if actual == "protein" else "Nucleotide"
            return [
                Problem(
                    code="wrong_data_type",
                    message=f"GARD's data_type is {options.data_type} but this is a {actual} "
                    f"alignment; set data_type to {fix}",
                )
            ]
        return []

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        data_type = options.data_type
        args: dict[str, OptionValue] = {
            "type": DATA_TYPES[data_type],
            "rv": RATE_VARIATION[options.site_to_site_variation],
            "max-breakpoints": options.max_breakpoints,
            "mode": options.run_mode,
        }
        if options.site_to_site_variation != "None":
            args["rate-classes"] = options.rate_classes
        if data_type == "Protein":
            args["model"] = options.model
        return args

    def summarize(self, data: dict[str, Any], options: Any) -> GardSummary:
        spans = segments(data)
        support = breakpoint_support(data)
        sequences, sites = input_counts(data)
        protein = options.data_type == "Protein"
        unit: Literal["nucleotide", "residue"] = "residue" if protein else "nucleotide"
        best = number(data.get("bestModelAICc"))
        single = number(data.get("singleTreeAICc"))
        baseline = number(data.get("baselineScore"))
        breakpoints = []
        for _, end in spans[:-1]:
            entry: dict[str, Any] = {
                "after": end,
                "support": rounded(support.get(end, float("nan"))),
            }
            if unit == "nucleotide":
                entry["codon_position"] = _codon_position(end)
                entry["between_codons"] = end % 3 == 0
            breakpoints.append(entry)
        text = self._text(spans, breakpoints, unit, single - best, baseline - best)
        caveats = power_caveats(sequences)
        if breakpoints and not single - best >= WEAK_CAIC:
            caveats.append(
                "The c-AIC gain over a single tree (with segment-specific branch lengths) is "
                f"small (< {WEAK_CAIC:g}): the segments may differ in rates rather than in "
                "topology, which is weak evidence of recombination."
            )
        if (
            breakpoints
            and unit == "nucleotide"
            and not all(b["between_codons"] for b in breakpoints)
        ):
            caveats.append(
                "Some boundaries fall inside a codon: move them to the nearest codon boundary "
                "before running codon (selection) analyses on the segments."
            )
        if breakpoints:
            caveats.append(
                "Recombination makes selection analyses on a single tree unreliable: rerun them "
                "on the partitioned alignment (one tree per segment)."
            )
        else:
            caveats.append(
                "No breakpoint improved the fit: this is no evidence of recombination, not proof "
                "that there was none (GARD has little power with few or very similar sequences)."
            )
        return GardSummary(
            method=self.name,
            summary_text=text,
            caveats=caveats,
            sequences=sequences,
            codons=None,
            breakpoint_count=len(breakpoints),
            unit=unit,
            segments=[{"segment": i + 1, "start": s, "end": e} for i, (s, e) in enumerate(spans)],
            breakpoints=breakpoints,
            caic_improvement_single_tree=rounded(single - best, 2),
            caic_improvement_no_breakpoints=rounded(baseline - best, 2),
            best_caic=rounded(best, 2),
            support=[
                {"after": site, "support": rounded(value)}
                for site, value in sorted(support.items())
            ],
        )

    def _text(
        self,
        spans: list[tuple[int, int]],
        breakpoints: list[dict[str, Any]],
        unit: str,
        gain_single: float,
        gain_none: float,
    ) -> str:
        if not breakpoints:
            return "GARD found no evidence of recombination: no breakpoint improved the c-AIC."
        where = [
            f"after {unit} {b['after']}"
            + (f" ({b['codon_position']})" if "codon_position" in b else "")
            + (f", support {b['support']:.2f}" if b["support"] is not None else "")
            for b in breakpoints
        ]
        parts = ", ".join(f"{s}-{e}" for s, e in spans)
        return (
            f"GARD found {plural(len(breakpoints), 'recombination breakpoint')} "
            f"({listing(where, 10)}), splitting the alignment into {len(spans)} segments "
            f"({unit}s {parts}, 1-based). The best model improves c-AIC by "
            f"{_fmt(gain_single)} over a single tree with segment-specific branch lengths and by "
            f"{_fmt(gain_none)} over the model without breakpoints."
        )

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, GardSummary)
        segments_plot = plot(
            f"GARD: segments ({summary.breakpoint_count} breakpoints)",
            summary.segments,
            {"type": "bar", "height": 30},
            {
                "x": {
                    "field": "start",
                    "type": "quantitative",
                    "title": f"Alignment {summary.unit}",
                },
                "x2": {"field": "end"},
                "color": {"field": "segment", "type": "nominal", "title": "Segment"},
                "tooltip": tooltip(("segment", "start", "end")),
            },
            height=60,
        )
        support_plot = plot(
            "GARD: model-averaged support for a breakpoint after each site",
            summary.support,
            {"type": "bar", "width": 2},
            {
                "x": {
                    "field": "after",
                    "type": "quantitative",
                    "title": f"Breakpoint after {summary.unit}",
                },
                "y": {
                    "field": "support",
                    "type": "quantitative",
                    "title": "Support",
                    "scale": {"domain": [0, 1]},
                },
                "tooltip": tooltip(("after", "support")),
            },
            height=200,
        )
        return [segments_plot, support_plot]

    def derived_datasets(
        self, data: dict[str, Any], records: list[tuple[str, str]], name: str
    ) -> list[DerivedDataset]:
        """One FASTA per segment (1-based inclusive columns, as HyPhy's partition file)."""
        spans = segments(data)
        if len(spans) < 2:
            return []
        return [segment_fasta(records, name, i, start, end) for i, (start, end) in enumerate(spans)]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        spans = segments(data)
        support = breakpoint_support(data)
        trees = data.get("breakpointData", {})
        rows = []
        for index, (start, end) in enumerate(spans):
            block = trees.get(str(index), {}) if isinstance(trees, dict) else {}
            last = index == len(spans) - 1
            rows.append(
                [
                    index + 1,
                    start,
                    end,
                    end - start + 1,
                    None if last else rounded(support.get(end, float("nan"))),
                    block.get("tree") if isinstance(block, dict) else None,
                ]
            )
        return Table(
            columns=[
                "segment",
                "start",
                "end",
                "length",
                "support of the breakpoint after",
                "tree",
            ],
            rows=rows,
        )


def segment_fasta(
    records: list[tuple[str, str]], name: str, index: int, start: int, end: int
) -> DerivedDataset:
    """Segment `index` (0-based) of the analysed alignment: columns start..end (1-based)."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    note = "" if (start - 1) % 3 == 0 and end % 3 == 0 else " (not whole codons)"
    return DerivedDataset(
        name=f"{stem} GARD segment {index + 1} ({start}-{end}).fasta",
        description=f"Columns {start}-{end} of {name}: GARD segment {index + 1}{note}",
        fasta="".join(f">{seq_name}\n{seq[start - 1 : end]}\n" for seq_name, seq in records),
    )


def _fmt(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}"


METHOD = Gard()
