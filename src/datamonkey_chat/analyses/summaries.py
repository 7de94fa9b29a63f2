"""Biologist-readable summaries computed from HyPhy's result JSON (never guessed).

Each `summarize_*` returns a small JSON-able dict: `method`, `summary_text` and the
numbers behind it, plus a capped per-site or per-branch series for plotting. Columns are
looked up by header name (MLE.headers), not by position, so HyPhy versions that add
columns still work. Site numbers are 1-based alignment codons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

MAX_SERIES = 500  # points in a plotting series
MAX_LISTED = 50  # sites/branches listed by number in a summary

Summary = dict[str, Any]
Row = Sequence[float]


class SummaryError(ValueError):
    """The JSON does not have the shape this method's HyPhy output has."""


# ---------------------------------------------------------------- JSON helpers


def _headers(data: dict[str, Any]) -> list[str]:
    try:
        return [str(h[0]) for h in data["MLE"]["headers"]]
    except (KeyError, TypeError, IndexError) as exc:
        raise SummaryError("result JSON has no MLE.headers") from exc


def _column(headers: list[str], *names: str) -> int:
    for name in names:
        if name in headers:
            return headers.index(name)
    raise SummaryError(f"result JSON has none of the columns {names}")


def _site_rows(
    data: dict[str, Any], content: Callable[[Any], Any] | None = None
) -> Iterator[tuple[int, Row]]:
    """(1-based alignment codon, row) over all partitions, using 'data partitions' coverage."""
    partitions = data.get("MLE", {}).get("content", {})
    if not isinstance(partitions, dict) or not partitions:
        raise SummaryError("result JSON has no MLE.content")
    coverage = data.get("data partitions", {})
    for key in sorted(partitions, key=int):
        rows = content(partitions[key]) if content else partitions[key]
        sites = _coverage(coverage, key, len(rows))
        yield from zip(sites, rows, strict=False)


def _coverage(coverage: dict[str, Any], key: str, n: int) -> list[int]:
    try:
        return [int(s) + 1 for s in coverage[key]["coverage"][0]]
    except (KeyError, IndexError, TypeError):
        return list(range(1, n + 1))


def _num(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _r(value: float, digits: int = 4) -> float:
    return round(value, digits)


def _listing(sites: list[int]) -> str:
    shown = ", ".join(str(s) for s in sites[:MAX_LISTED])
    return shown + (f" and {len(sites) - MAX_LISTED} more" if len(sites) > MAX_LISTED else "")


def _cap(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return series[:MAX_SERIES]


def _sites_sentence(n: int, kind: str, test: str) -> str:
    return f"{n} site{'s' if n != 1 else ''} under {kind} selection ({test})"


def _input_info(data: dict[str, Any]) -> dict[str, Any]:
    info = data.get("input", {})
    return {"sequences": info.get("number of sequences"), "codons": info.get("number of sites")}


# ---------------------------------------------------------------- site methods


def summarize_fel(data: dict[str, Any], p_threshold: float = 0.1) -> Summary:
    """FEL: sites with beta > alpha (positive) or beta < alpha (negative) at p <= threshold."""
    h = _headers(data)
    a, b, p = _column(h, "alpha"), _column(h, "beta"), _column(h, "p-value")
    return _site_summary(
        "FEL", data, p_threshold, lambda r: (_num(r[a]), _num(r[b]), _num(r[p]), _num(r[p]))
    )


def summarize_slac(data: dict[str, Any], p_threshold: float = 0.1) -> Summary:
    """SLAC: one-sided tests P[dN/dS > 1] and P[dN/dS < 1] on the RESOLVED ancestral counts."""
    h = _headers(data)
    ds, dn = _column(h, "dS"), _column(h, "dN")
    pos, neg = _column(h, "P [dN/dS > 1]"), _column(h, "P [dN/dS < 1]")

    def values(r: Row) -> tuple[float, float, float, float]:
        return _num(r[ds]), _num(r[dn]), _num(r[pos]), _num(r[neg])

    return _site_summary("SLAC", data, p_threshold, values, content=_slac_rows)


def _slac_rows(partition: Any) -> Any:
    try:
        return partition["by-site"]["RESOLVED"]
    except (KeyError, TypeError) as exc:
        raise SummaryError("SLAC JSON has no MLE.content.<partition>.by-site.RESOLVED") from exc


def _site_summary(
    method: str,
    data: dict[str, Any],
    p_threshold: float,
    values: Callable[[Row], tuple[float, float, float, float]],
    content: Callable[[Any], Any] | None = None,
) -> Summary:
    """values(row) -> (alpha, beta, p for positive, p for negative)."""
    positive, negative, series = [], [], []
    for site, row in _site_rows(data, content):
        alpha, beta, p_pos, p_neg = values(row)
        if beta > alpha and p_pos <= p_threshold:
            positive.append(site)
        elif beta < alpha and p_neg <= p_threshold:
            negative.append(site)
        series.append(
            {"site": site, "alpha": _r(alpha), "beta": _r(beta), "p": _r(min(p_pos, p_neg))}
        )
    return _selected_sites_summary(
        method,
        data,
        f"p <= {p_threshold:g}",
        {"p_threshold": p_threshold},
        positive,
        negative,
        series,
    )


def _selected_sites_summary(
    method: str,
    data: dict[str, Any],
    test: str,
    threshold: dict[str, float],
    positive: list[int],
    negative: list[int],
    series: list[dict[str, Any]],
) -> Summary:
    """The sentence and numbers the per-site methods share (FEL, SLAC, FUBAR)."""
    pervasive = "pervasive positive (diversifying)"
    text = (
        f"{method} found {_sites_sentence(len(positive), pervasive, test)}"
        f" and {_sites_sentence(len(negative), 'negative (purifying)', test)}"
        f" among {len(series)} codons."
    )
    if positive:
        text += f" Positively selected sites: {_listing(positive)}."
    return {
        "method": method,
        "summary_text": text,
        **threshold,
        "tested_sites": len(series),
        "positive_sites": positive[:MAX_LISTED],
        "negative_sites": negative[:MAX_LISTED],
        "positive_count": len(positive),
        "negative_count": len(negative),
        **_input_info(data),
        "sites": _cap(series),
    }


def summarize_meme(data: dict[str, Any], p_threshold: float = 0.1) -> Summary:
    """MEME: episodic positive selection where the LRT p-value <= threshold."""
    h = _headers(data)
    a = _column(h, "&alpha;", "alpha")
    bp = _column(h, "&beta;<sup>+</sup>", "beta+")
    wp = _column(h, "p<sup>+</sup>", "p+")
    p = _column(h, "p-value")
    nb = _column(h, "# branches under selection")
    positive, series = [], []
    for site, row in _site_rows(data):
        pv = _num(row[p])
        if pv <= p_threshold:
            positive.append(site)
        series.append(
            {
                "site": site,
                "alpha": _r(_num(row[a])),
                "beta_plus": _r(_num(row[bp])),
                "weight_plus": _r(_num(row[wp])),
                "p": _r(pv),
                "branches": int(_num(row[nb]) or 0),
            }
        )
    test = f"p <= {p_threshold:g}"
    text = (
        f"MEME found {_sites_sentence(len(positive), 'episodic positive (diversifying)', test)}"
        f" among {len(series)} codons."
    )
    if positive:
        text += f" Sites: {_listing(positive)}."
    return {
        "method": "MEME",
        "summary_text": text,
        "p_threshold": p_threshold,
        "tested_sites": len(series),
        "positive_sites": positive[:MAX_LISTED],
        "positive_count": len(positive),
        **_input_info(data),
        "sites": _cap(series),
    }


def summarize_fubar(data: dict[str, Any], posterior_threshold: float = 0.9) -> Summary:
    """FUBAR: Prob[alpha<beta] >= threshold (positive), Prob[alpha>beta] >= threshold (negative)."""
    h = _headers(data)
    a, b = _column(h, "alpha"), _column(h, "beta")
    neg, pos = _column(h, "Prob[alpha>beta]"), _column(h, "Prob[alpha<beta]")
    positive, negative, series = [], [], []
    for site, row in _site_rows(data):
        p_pos, p_neg = _num(row[pos]), _num(row[neg])
        if p_pos >= posterior_threshold:
            positive.append(site)
        elif p_neg >= posterior_threshold:
            negative.append(site)
        series.append(
            {
                "site": site,
                "alpha": _r(_num(row[a])),
                "beta": _r(_num(row[b])),
                "prob_positive": _r(p_pos),
                "prob_negative": _r(p_neg),
            }
        )
    return _selected_sites_summary(
        "FUBAR",
        data,
        f"posterior probability >= {posterior_threshold:g}",
        {"posterior_threshold": posterior_threshold},
        positive,
        negative,
        series,
    )


# ---------------------------------------------------------------- gene / branch methods


def _test_results(data: dict[str, Any]) -> dict[str, Any]:
    results = data.get("test results")
    if not isinstance(results, dict):
        raise SummaryError("result JSON has no 'test results'")
    return results


def summarize_busted(data: dict[str, Any], p_threshold: float = 0.05) -> Summary:
    """BUSTED: gene-wide test for episodic diversifying selection on the tested branches."""
    results = _test_results(data)
    p = _num(results.get("p-value"))
    found = p <= p_threshold
    verdict = (
        "evidence of episodic diversifying selection somewhere in the gene on the tested branches"
        if found
        else "no evidence of episodic diversifying selection on the tested branches"
    )
    omega = _busted_omegas(data)
    text = f"BUSTED: gene-wide p = {p:.4g} (threshold {p_threshold:g}), so {verdict}."
    if omega:
        top = omega[-1]
        text += (
            f" The unconstrained model's highest dN/dS class is omega = {top['omega']:.3g} "
            f"on {100 * top['proportion']:.2f}% of sites/branches."
        )
    return {
        "method": "BUSTED",
        "summary_text": text,
        "p_value": p,
        "lrt": _num(results.get("LRT")),
        "p_threshold": p_threshold,
        "selection_detected": found,
        "omega_classes": omega,
        **_input_info(data),
    }


def _busted_omegas(data: dict[str, Any]) -> list[dict[str, float]]:
    try:
        classes = data["fits"]["Unconstrained model"]["Rate Distributions"]["Test"]
    except (KeyError, TypeError):
        return []
    return [
        {"omega": _r(_num(c.get("omega"))), "proportion": _r(_num(c.get("proportion")))}
        for _, c in sorted(classes.items(), key=lambda kv: int(kv[0]))
    ]


def summarize_absrel(data: dict[str, Any], p_threshold: float = 0.05) -> Summary:
    """aBSREL: branches whose Holm-corrected p-value <= threshold."""
    branches = _branch_attributes(data)
    selected: list[str] = []
    series: list[dict[str, Any]] = []
    for name, attrs in sorted(branches.items()):
        if not isinstance(attrs, dict) or "Corrected P-value" not in attrs:
            continue
        corrected = _num(attrs["Corrected P-value"])
        if corrected <= p_threshold:
            selected.append(name)
        series.append(
            {
                "branch": name,
                "corrected_p": _r(corrected),
                "uncorrected_p": _r(_num(attrs.get("Uncorrected P-value"))),
                "rate_classes": attrs.get("Rate classes"),
                "max_omega": _r(_max_omega(attrs.get("Rate Distributions"))),
            }
        )
    series.sort(key=lambda s: float(s["corrected_p"]))
    text = (
        f"aBSREL found {len(selected)} of {len(series)} tested branch"
        f"{'es' if len(series) != 1 else ''} with episodic diversifying selection "
        f"(Holm-Bonferroni corrected p <= {p_threshold:g})"
    )
    text += f": {', '.join(selected)}." if selected else "."
    return {
        "method": "aBSREL",
        "summary_text": text,
        "p_threshold": p_threshold,
        "tested_branches": len(series),
        "selected_branches": selected,
        **_input_info(data),
        "branches": _cap(series),
    }


def _branch_attributes(data: dict[str, Any]) -> dict[str, Any]:
    try:
        partition = data["branch attributes"]["0"]
    except (KeyError, TypeError) as exc:
        raise SummaryError("result JSON has no 'branch attributes'.0") from exc
    return partition if isinstance(partition, dict) else {}


def _max_omega(distribution: Any) -> float:
    # [[omega, weight], ...]
    try:
        return max(float(c[0]) for c in distribution)
    except (TypeError, ValueError, IndexError):
        return float("nan")


def summarize_relax(data: dict[str, Any], p_threshold: float = 0.05) -> Summary:
    """RELAX: K < 1 relaxation, K > 1 intensification of selection on test branches."""
    results = _test_results(data)
    k = _num(results.get("relaxation or intensification parameter"))
    p = _num(results.get("p-value"))
    significant = p <= p_threshold
    direction = "relaxation" if k < 1 else "intensification"
    if significant:
        verdict = f"significant {direction} of selection on the test branches"
    else:
        verdict = f"no significant change in selection strength (K suggests {direction})"
    text = f"RELAX: K = {k:.3g}, p = {p:.4g} (threshold {p_threshold:g}): {verdict}."
    return {
        "method": "RELAX",
        "summary_text": text,
        "k": k,
        "p_value": p,
        "lrt": _num(results.get("LRT")),
        "p_threshold": p_threshold,
        "significant": significant,
        "direction": direction,
        **_input_info(data),
    }


def summarize_gard(data: dict[str, Any]) -> Summary:
    """GARD: recombination breakpoints of the best model (nucleotide sites, 1-based)."""
    segments = _gard_segments(data)
    breakpoints = [end for _, end in segments[:-1]]  # a breakpoint ends each segment but the last
    text = (
        f"GARD found {len(breakpoints)} recombination breakpoint"
        f"{'s' if len(breakpoints) != 1 else ''}"
    )
    text += (
        f" at site(s) {_listing(breakpoints)}." if breakpoints else "; one tree fits the alignment."
    )
    return {
        "method": "GARD",
        "summary_text": text,
        "breakpoints": breakpoints,
        "segments": [{"start": s, "end": e} for s, e in segments][:MAX_LISTED],
        "best_aicc": data.get("bestModelAICc"),
        "single_tree_aicc": data.get("singleTreeAICc"),
        "input": {
            "sequences": data.get("input", {}).get("number of sequences"),
            "sites": data.get("input", {}).get("number of sites"),
        },
    }


def _gard_segments(data: dict[str, Any]) -> list[tuple[int, int]]:
    try:
        parts = data["breakpointData"]
        spans = [parts[k]["bps"][0] for k in sorted(parts, key=int)]
    except (KeyError, TypeError, IndexError) as exc:
        raise SummaryError("GARD JSON has no breakpointData.<n>.bps") from exc
    return [(int(s), int(e)) for s, e in spans]  # GARD's bps are already 1-based sites


# ---------------------------------------------------------------- dispatch

SUMMARIZERS: dict[str, Callable[[dict[str, Any]], Summary]] = {
    "fel": summarize_fel,
    "slac": summarize_slac,
    "meme": summarize_meme,
    "fubar": summarize_fubar,
    "busted": summarize_busted,
    "absrel": summarize_absrel,
    "relax": summarize_relax,
    "gard": summarize_gard,
}


SERIES_KEYS = ("sites", "branches")


def summarize(
    method: str, data: dict[str, Any], include_series: bool = False, **thresholds: float
) -> Summary:
    """Summary for any supported method; others get a generic, honest placeholder.

    Without `include_series` the result is a few KB, suitable for a language model;
    with it, the capped per-site/per-branch series for plotting is kept.
    """
    summarizer = SUMMARIZERS.get(method.lower())
    if summarizer is None:
        return {
            "method": method.upper(),
            "summary_text": f"No summary is available for {method.upper()} yet; see the full JSON.",
            "keys": sorted(data)[:30],
        }
    summary = summarizer(data, **thresholds)
    if not include_series:
        for key in SERIES_KEYS:
            summary.pop(key, None)
    return summary
