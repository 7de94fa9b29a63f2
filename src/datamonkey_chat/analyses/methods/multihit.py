"""MULTI-HIT (HyPhy's FitMultiModel, keyword `fmm`): do instantaneous double or triple
nucleotide substitutions within a codon improve the fit?

FitMultiModel.bf fits four MG94 codon models (single hit; + double hits; + double and triple
hits; with `triple_islands`, + triple hits between synonymous codons only) and writes:
- `test results`: likelihood-ratio tests "Double-hit vs single-hit", "Triple-hit vs single-hit",
  "Triple-hit vs double-hit" (and two island tests), each with `LRT` and `p-value`;
- `fits.<model>`: log-likelihood, AIC-c and `Rate Distributions.parameters`, the global MLEs
  (omega, the double-hit rate delta, the triple-hit rate psi, ...);
- `Evidence Ratios`: per site, "Two-hit" (2H vs 1H), "Three-hit" (3H vs 2H) and the island
  comparisons, each a 1 x sites matrix; FitMultiModel.bf singles out sites with
  log(evidence ratio) > 2 for any comparison;
- `Site Log Likelihood.<model>`: per-site log-likelihoods.
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
    SummaryError,
    Table,
    input_counts,
    listing,
    number,
    plot,
    power_caveats,
    rounded,
    tooltip,
)
from datamonkey_chat.analyses.methods.options import GeneticCode, PValue, YesNo

SINGLE = "Standard MG94"
DOUBLE = "MG94 with double instantaneous substitutions"
TRIPLE = "MG94 with double and triple instantaneous substitutions"
ISLANDS = "MG94 with double and triple instantaneous substitutions [only synonymous islands]"
MODELS = (SINGLE, DOUBLE, TRIPLE, ISLANDS)
# test name in HyPhy's JSON -> what it tells a biologist
TESTS = {
    "Double-hit vs single-hit": "double hits (delta > 0)",
    "Triple-hit vs double-hit": "triple hits beyond double hits",
    "Triple-hit vs single-hit": "double and/or triple hits together",
    "Triple-hit-island vs double-hit": "triple hits between synonymous codons (islands)",
    "Triple-hit vs Triple-hit-island": "triple hits beyond synonymous islands",
}
# evidence-ratio key -> (column label, short label)
RATIOS = {
    "Two-hit": "ER 2H vs 1H",
    "Three-hit": "ER 3H vs 2H",
    "Three-hit islands vs 2-hit": "ER 3H-islands vs 2H",
    "Three-hit vs three-hit islands": "ER 3H vs 3H-islands",
}
# HyPhy's parameter names -> ours
RATE_NAMES = {
    "non-synonymous/synonymous rate ratio": "omega",
    "rate at which 2 nucleotides are changed instantly within a single codon": "double-hit rate",
    "rate at which 3 nucleotides are changed instantly within a single codon": "triple-hit rate",
    "rate at which 3 nucleotides are changed instantly within a single codon between "
    "synonymous codon islands": "triple-hit island rate",
}
STRONG_LOG_RATIO = 2.0  # FitMultiModel.bf calls out sites with log(ER) > 2 (ER > 7.39)


class MultihitOptions(MethodOptions):
    """Upstream's MultihitRequest fields, plus the p-value threshold for the model tests."""

    genetic_code: GeneticCode = "Universal"
    triple_islands: YesNo = Field(
        "No", description="Separate rate for triple hits between synonymous codons (islands)"
    )
    rate_classes: Annotated[int, Field(ge=1, le=10)] = Field(
        3, description="omega rate classes across sites (1: no rate variation)"
    )
    pvalue: PValue = Field(0.05, description="p-value threshold for the model tests")


class MultihitSummary(Summary):
    threshold: float
    tests: list[dict[str, Any]] = Field(
        default_factory=list, description="name, meaning, LRT, p, significant"
    )
    rates: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="model -> omega and multiple-hit rates"
    )
    strong_sites: list[int] = Field(
        default_factory=list, description="sites with log(evidence ratio) > 2 for some model"
    )
    sites: list[dict[str, Any]] = Field(default_factory=list, description="per-site ER series")


def _tests(data: dict[str, Any], threshold: float) -> list[dict[str, Any]]:
    results = data.get("test results")
    if not isinstance(results, dict):
        raise SummaryError("MULTI-HIT JSON has no 'test results'")
    tests = []
    for name, meaning in TESTS.items():
        result = results.get(name)
        if not isinstance(result, dict):
            continue
        p = number(result.get("p-value"))
        tests.append(
            {
                "test": name,
                "meaning": meaning,
                "lrt": rounded(number(result.get("LRT"))),
                "p": rounded(p),
                "significant": p <= threshold,
            }
        )
    return tests


def _rates(data: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """model -> {omega, double-hit rate, ...}: the global MLEs a biologist reads."""
    fits = data.get("fits", {})
    found: dict[str, dict[str, float | None]] = {}
    for model in MODELS:
        fit = fits.get(model) if isinstance(fits, dict) else None
        distributions = fit.get("Rate Distributions", {}) if isinstance(fit, dict) else {}
        parameters = distributions.get("parameters") if isinstance(distributions, dict) else None
        if isinstance(parameters, dict):
            found[model] = {
                label: rounded(number(parameters[name]))
                for name, label in RATE_NAMES.items()
                if name in parameters
            }
    return found


def _ratios(data: dict[str, Any]) -> dict[str, list[float]]:
    ratios = data.get("Evidence Ratios", {})
    found: dict[str, list[float]] = {}
    if isinstance(ratios, dict):
        for key in RATIOS:
            values = ratios.get(key)
            if isinstance(values, list) and values and isinstance(values[0], list):
                found[key] = [number(v) for v in values[0]]
    return found


def _strong(value: float) -> bool:
    return value > 0 and math.isfinite(value) and math.log(value) > STRONG_LOG_RATIO


def _rate_text(rates: dict[str, dict[str, float | None]]) -> str:
    parts = []
    for model, rate, label in (
        (DOUBLE, "double-hit rate", "double-hit"),
        (TRIPLE, "triple-hit rate", "triple-hit"),
    ):
        value = rates.get(model, {}).get(rate)
        if value is not None:
            parts.append(f"{rate} {value:.3g} in the {label} model")
    if not parts:
        return ""
    return "; ".join(parts) + " (relative to single-nucleotide substitutions)"


class Multihit(HyPhyMethod):
    id = "multi-hit"
    keyword = "fmm"
    name = "MULTI-HIT"
    Options = MultihitOptions
    summary_model = MultihitSummary
    plots_shown = (
        "site evidence ratios (2H vs 1H, 3H vs 2H ...) per codon, log scale",
        "LRT statistic of each model test, significant tests in red",
    )

    def arguments(self, options: Any, context: InputContext) -> dict[str, OptionValue]:
        return {
            "code": options.genetic_code,
            "rates": options.rate_classes,
            "triple-islands": options.triple_islands,
        }

    def summarize(self, data: dict[str, Any], options: Any) -> Summary:
        threshold = float(options.pvalue)
        tests = _tests(data, threshold)
        rates = _rates(data)
        ratios = _ratios(data)
        n_sites = max((len(v) for v in ratios.values()), default=0)
        series, strong = [], []
        for i in range(n_sites):
            point: dict[str, Any] = {"site": i + 1}
            point.update(
                {RATIOS[k]: rounded(v[i]) if i < len(v) else None for k, v in ratios.items()}
            )
            if any(i < len(v) and _strong(v[i]) for v in ratios.values()):
                strong.append(i + 1)
            series.append(point)
        sequences, codons = input_counts(data)
        return MultihitSummary(
            method=self.name,
            summary_text=self._text(tests, rates, strong, threshold),
            caveats=self._caveats(tests, sequences),
            sequences=sequences,
            codons=codons,
            threshold=threshold,
            tests=tests,
            rates=rates,
            strong_sites=strong,
            sites=series,
        )

    def _text(
        self,
        tests: list[dict[str, Any]],
        rates: dict[str, dict[str, float | None]],
        strong: list[int],
        threshold: float,
    ) -> str:
        described = []
        for t in tests:
            verdict = "significant" if t["significant"] else "not significant"
            # HyPhy can report a tiny negative LRT when two fits are equally good
            lrt = "n/a" if t["lrt"] is None else f"{max(t['lrt'], 0.0):.2f}"
            p = "n/a" if t["p"] is None else f"{t['p']:.3g}"
            described.append(f"{t['test']}: LRT {lrt}, p = {p} ({verdict})")
        supported = [t["meaning"] for t in tests if t["significant"]]
        text = "MULTI-HIT compared codon models with instantaneous multi-nucleotide changes "
        text += f"against simpler ones (likelihood-ratio tests, p <= {threshold:g}). "
        text += "; ".join(described) + ". "
        if supported:
            text += "The data support " + " and ".join(supported[:2]) + "."
        else:
            text += "No test is significant: no evidence of multi-nucleotide substitutions."
        rate_text = _rate_text(rates)
        if rate_text:
            text += f" Estimated {rate_text}."
        text += (
            f" {len(strong)} sites show strong site-level preference for a multiple-hit model "
            "(evidence ratio > e^2 = 7.4)" + (f": {listing(strong)}." if strong else ".")
        )
        return text

    def _caveats(self, tests: list[dict[str, Any]], sequences: int | None) -> list[str]:
        caveats = power_caveats(sequences)
        if any(t["significant"] for t in tests):
            caveats.append(
                "Support for multiple hits matters for selection tests: single-hit models can "
                "mistake multi-nucleotide changes for positive selection, so treat episodic "
                "selection calls (e.g. BUSTED, aBSREL) on these data with caution."
            )
        else:
            caveats.append(
                "Non-significant tests are no evidence of multiple hits, not evidence that "
                "there are none."
            )
        caveats.append(
            "Site evidence ratios describe where the signal comes from; they are not tests, "
            "and the model tests are not corrected for being several."
        )
        return caveats

    def plots(self, summary: Summary) -> list[PlotSpec]:
        assert isinstance(summary, MultihitSummary)
        long = [
            {"site": s["site"], "comparison": key, "evidence_ratio": value}
            for s in summary.sites
            for key, value in s.items()
            if key != "site" and value is not None and value > 0
        ]
        return [
            plot(
                "MULTI-HIT: site evidence ratios for multiple-hit models (above 7.4: strong)",
                long,
                {"type": "point", "filled": True, "size": 30},
                {
                    "x": {"field": "site", "type": "quantitative", "title": "Codon"},
                    "y": {
                        "field": "evidence_ratio",
                        "type": "quantitative",
                        "title": "Evidence ratio (log scale)",
                        "scale": {"type": "log"},
                    },
                    "color": {"field": "comparison", "type": "nominal", "title": "Models"},
                    "tooltip": tooltip(("site", "comparison", "evidence_ratio")),
                },
            ),
            plot(
                f"MULTI-HIT: model tests (p <= {summary.threshold:g} in red)",
                summary.tests,
                {"type": "bar"},
                {
                    "y": {"field": "test", "type": "nominal", "title": None, "sort": None},
                    "x": {"field": "lrt", "type": "quantitative", "title": "LRT statistic"},
                    "color": {
                        "field": "significant",
                        "type": "nominal",
                        "title": "Significant",
                        "scale": {"domain": [True, False], "range": ["#d62728", "#bbbbbb"]},
                    },
                    "tooltip": tooltip(("test", "lrt", "p")),
                },
                height=160,
            ),
        ]

    def table(self, data: dict[str, Any], options: Any) -> Table:
        """Per site: every evidence ratio, then the site log-likelihood under every model."""
        ratios = _ratios(data)
        logl = data.get("Site Log Likelihood", {})
        models = {
            m: [number(v) for v in logl[m][0]]
            for m in MODELS
            if isinstance(logl, dict) and isinstance(logl.get(m), list) and logl[m]
        }
        n_sites = max([len(v) for v in ratios.values()] + [len(v) for v in models.values()] + [0])
        columns = ["site", *(RATIOS[k] for k in ratios), *(f"log L ({m})" for m in models)]
        rows = []
        for i in range(n_sites):
            rows.append(
                [
                    i + 1,
                    *(v[i] if i < len(v) else None for v in ratios.values()),
                    *(v[i] if i < len(v) else None for v in models.values()),
                ]
            )
        return Table(columns=columns, rows=rows)


METHOD = Multihit()
