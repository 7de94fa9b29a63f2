"""Shared code of the per-site methods (FEL, SLAC, MEME, FUBAR, Contrast-FEL, MULTI-HIT).

HyPhy writes a table per data partition under `MLE.content`, with column names in
`MLE.headers` ([name, description] pairs) and the alignment sites each row covers in
`data partitions.<n>.coverage` (0-based). Columns are looked up by name, not position.
Site numbers we show are 1-based alignment codons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from datamonkey_chat.analyses.methods.base import (
    PlotSpec,
    Summary,
    SummaryError,
    Table,
    input_counts,
    listing,
    plot,
    plural,
    power_caveats,
    tooltip,
)

Row = Sequence[Any]
Verdict = Literal["positive", "negative", "none"]


def headers(data: dict[str, Any]) -> list[str]:
    try:
        return [str(h[0]) for h in data["MLE"]["headers"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise SummaryError("result JSON has no MLE.headers") from exc


def column(names: list[str], *candidates: str) -> int:
    for name in candidates:
        if name in names:
            return names.index(name)
    raise SummaryError(f"result JSON has none of the columns {candidates}")


def site_rows(
    data: dict[str, Any], content: Callable[[Any], Any] | None = None
) -> Iterator[tuple[int, int, Row]]:
    """(partition, 1-based alignment codon, row) over all partitions."""
    partitions = data.get("MLE", {}).get("content", {})
    if not isinstance(partitions, dict) or not partitions:
        raise SummaryError("result JSON has no MLE.content")
    coverage = data.get("data partitions", {})
    for key in sorted(partitions, key=int):
        rows = content(partitions[key]) if content else partitions[key]
        if not isinstance(rows, list):
            raise SummaryError(f"result JSON's MLE.content.{key} is not a table")
        for site, row in zip(_coverage(coverage, key, len(rows)), rows, strict=False):
            yield int(key), site, row


def _coverage(coverage: Any, key: str, n: int) -> list[int]:
    try:
        return [int(s) + 1 for s in coverage[key]["coverage"][0]]
    except (KeyError, IndexError, TypeError, ValueError):
        return list(range(1, n + 1))


def site_table(data: dict[str, Any], content: Callable[[Any], Any] | None = None) -> Table:
    """Every column HyPhy reports, one row per site, with the site and partition first."""
    names = headers(data)
    rows = [[site, partition, *row] for partition, site, row in site_rows(data, content)]
    return Table(columns=["site", "partition", *names], rows=rows)


class SelectedSites(Summary):
    """A per-site method's verdict: sites called positive/negative at a stated threshold."""

    test: str = Field(description="the rule a site had to pass, e.g. 'p <= 0.1'")
    tested_sites: int
    positive_sites: list[int] = Field(default_factory=list)
    negative_sites: list[int] = Field(default_factory=list)
    positive_count: int = 0
    negative_count: int = 0
    sites: list[dict[str, Any]] = Field(default_factory=list, description="per-site plot series")


@dataclass(frozen=True)
class SiteSelection:
    """Every site's verdict, with the rows called positive kept for a method's extras."""

    series: list[dict[str, Any]]  # per site: site, the method's fields, selection
    positive_rows: list[tuple[int, int, Row]]  # (partition, site, row)
    negative: list[int]

    @property
    def positive(self) -> list[int]:
        return [site for _, site, _ in self.positive_rows]

    def selected_fields(self) -> dict[str, Any]:
        """The `SelectedSites` fields, to pass on to the method's summary model."""
        positive = self.positive
        return {
            "tested_sites": len(self.series),
            "positive_sites": positive,
            "negative_sites": self.negative,
            "positive_count": len(positive),
            "negative_count": len(self.negative),
            "sites": self.series,
        }


def select_sites(
    data: dict[str, Any],
    verdict: Callable[[Row], Verdict],
    fields: Callable[[Row], dict[str, Any]],
    content: Callable[[Any], Any] | None = None,
) -> SiteSelection:
    """Call every site with the method's own rule; `fields` gives the site's plot values."""
    series: list[dict[str, Any]] = []
    positive: list[tuple[int, int, Row]] = []
    negative: list[int] = []
    for partition, site, row in site_rows(data, content):
        call = verdict(row)
        if call == "positive":
            positive.append((partition, site, row))
        elif call == "negative":
            negative.append(site)
        series.append({"site": site, **fields(row), "selection": call})
    return SiteSelection(series, positive, negative)


def selected_sites_text(
    method: str, positive: list[int], negative: list[int] | None, tested: int, test: str, kind: str
) -> str:
    text = f"{method} found {plural(len(positive), 'site')} under {kind} selection"
    if negative is not None:
        text += f" and {plural(len(negative), 'site')} under negative (purifying) selection"
    text += f" ({test}) among {plural(tested, 'codon')}."
    if positive:
        text += f" Positively selected sites: {listing(positive)}."
    return text


def site_caveats(data: dict[str, Any], found: int) -> list[str]:
    sequences, _ = input_counts(data)
    caveats = power_caveats(sequences)
    if found == 0:
        caveats.append(
            "No site passed the threshold: this is no evidence of selection at these sites, "
            "not evidence that there was none."
        )
    return caveats


def with_beta_minus_alpha(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each site's point with `beta_minus_alpha` (dN - dS), the y of FEL's and FUBAR's plots."""
    return [
        {
            **s,
            "beta_minus_alpha": None
            if s["alpha"] is None or s["beta"] is None
            else round(s["beta"] - s["alpha"], 4),
        }
        for s in series
    ]


def site_plot(
    title: str,
    values: list[dict[str, Any]],
    y: str,
    y_title: str,
    color: str = "selection",
    y_scale: dict[str, Any] | None = None,
) -> PlotSpec:
    """Points per codon, coloured by the method's verdict; the whole alignment, no cut."""
    y_encoding: dict[str, Any] = {"field": y, "type": "quantitative", "title": y_title}
    if y_scale:
        y_encoding["scale"] = y_scale
    return plot(
        title,
        values,
        {"type": "point", "filled": True, "size": 30},
        {
            "x": {"field": "site", "type": "quantitative", "title": "Codon"},
            "y": y_encoding,
            "color": {
                "field": color,
                "type": "nominal",
                "title": "Selection",
                "scale": {
                    "domain": ["positive", "negative", "none"],
                    "range": ["#d62728", "#1f77b4", "#bbbbbb"],
                },
            },
            "tooltip": tooltip(values[0]) if values else [],
        },
    )
