"""The method reference (docs/methods.md), written from the modules and the catalog.

`python -m datamonkey_chat.analyses.methods.reference > docs/methods.md` rewrites it; a
unit test fails when the committed file no longer matches the code, so the documentation
of options, summaries, plots and downloads cannot drift from what the server does.
"""

from __future__ import annotations

from typing import Any

from datamonkey_chat.analyses.methods import option_list, registry
from datamonkey_chat.catalog import load_catalog

HEADER = """# HyPhy methods: options, summaries, plots, downloads

Written by `python -m datamonkey_chat.analyses.methods.reference` from the method modules
(`src/datamonkey_chat/analyses/methods/`) and the catalog; do not edit by hand.

Every method is started with `POST /api/v1/methods/{method}-start` and a JSON body with
`alignment` (a dataset id), optionally `tree` (a tree dataset, or a NEXUS alignment whose own
tree to use; without one the alignment's own tree or a neighbour-joining tree is used) and
the options below (the fields of the upstream Datamonkey API 1.2.0 request, plus additive
ones); a method that "runs on a tree alone" needs only `tree`, no `alignment`. A bad value
is refused with 422 naming the field. Every completed job offers
`GET /api/v1/jobs/{job_id}/table.csv` (one row per unit below, every column HyPhy reports)
and `GET /api/v1/jobs/{job_id}/result.json` (HyPhy's JSON, your sequence names restored).
"""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _options_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| option | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for row in rows:
        allowed = ", ".join(map(str, row.get("choices", [])))
        bounds = [
            f"{symbol} {row[key]}"
            for key, symbol in (
                ("minimum", ">="),
                ("exclusiveMinimum", ">"),
                ("maximum", "<="),
                ("exclusiveMaximum", "<"),
            )
            if key in row
        ]
        allowed = allowed or " and ".join(bounds)
        lines.append(
            f"| `{row['name']}` | {row['type']} | {_cell(row.get('default'))} | "
            f"{_cell(allowed)} | {_cell(row.get('description'))} |"
        )
    return lines


def render() -> str:
    modules = registry()
    out = [HEADER]
    for info in load_catalog().methods:
        module = modules.get(info.id)
        out.append(f"## {info.name}: {info.full_name}\n")
        out.append(f"{info.summary}\n")
        if module is None:
            out.append(f"Not runnable on this server. {info.note or ''}\n")
            continue
        out.append(
            f"Endpoint: `POST /api/v1/methods/{info.id}-start` (HyPhy `{module.keyword}`).\n"
        )
        if not module.requirements.needs_alignment:
            out.append(
                "Runs on a tree alone: without `alignment`, `tree` is required and HyPhy "
                "gets only the tree. With an `alignment` the run is as for other methods "
                "(the `tree` given, else the alignment's own, else a neighbour-joining "
                "tree).\n"
            )
        out.append("**Options**\n")
        out.extend(_options_table(option_list(module)))
        out.append("")
        out.append(f"**Summary.** {info.results}\n")
        fields = [
            f"`{name}`" + (f" ({field.description})" if field.description else "")
            for name, field in module.summary_model.model_fields.items()
        ]
        out.append(f"Summary fields: {', '.join(fields)}.\n")
        plots = "; ".join(module.plots_shown) or "none"
        out.append(f"**Plots.** {plots}.\n")
        out.append(f"**Table.** One row per {module.table_unit}.\n")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
