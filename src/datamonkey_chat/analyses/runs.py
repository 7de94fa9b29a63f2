"""One HyPhy run from options to summary, for the job service and the tests alike.

- `method_options`: the method's options model, or `OptionsError` naming each bad field.
- `run_problems`: why the run cannot go ahead on these data (checked before queueing).
- `plan_run`: the input files and the HyPhy command line.
- `read_result`: the user's names restored into HyPhy's JSON, then the method's summary and
  plots computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from datamonkey_chat.analyses import inputs, trees
from datamonkey_chat.analyses.methods.base import (
    HyPhyMethod,
    InputContext,
    MethodOptions,
    OptionValue,
    PlotSpec,
    Summary,
)
from datamonkey_chat.analyses.validation import (
    Problem,
    ValidationReport,
    check_tree_against_names,
    method_problems,
)


class OptionsError(ValueError):
    """Options that do not fit the method's model; `fields` lists each problem."""

    def __init__(self, method: str, fields: list[dict[str, str]]) -> None:
        shown = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        super().__init__(f"{method} options are invalid: {shown}")
        self.fields = fields


def method_options(method: HyPhyMethod, given: dict[str, Any]) -> MethodOptions:
    try:
        return method.options(given)
    except ValidationError as exc:
        fields = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "options",
                "message": _message(error),
            }
            for error in exc.errors(include_url=False)
        ]
        raise OptionsError(method.name, fields) from None


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "is not an option of this method"
    return str(error["msg"]).removeprefix("Value error, ")


def check_context(alignment: ValidationReport, tree: ValidationReport | None) -> InputContext:
    """What methods check before a run, without building a tree (a job builds it later)."""
    source = tree.tree_newick if tree is not None and tree.tree_newick else alignment.tree_newick
    if not source:
        return InputContext(alignment=alignment, tree_available=True)
    root = trees.parse_newick(source)
    return InputContext(
        alignment=alignment,
        tree_available=True,
        tree_rooted=trees.is_rooted(root),
        branch_sets=inputs.branch_sets(root),
    )


def run_problems(
    method: HyPhyMethod,
    options: MethodOptions,
    alignment: ValidationReport | None,
    tree: ValidationReport | None,
) -> list[Problem]:
    """The data's problems for this method; [] when the run can go ahead.

    `alignment` None: a run on the tree alone (a method that needs no alignment)."""
    if alignment is None:
        if tree is None or not tree.tree_newick:
            return [Problem(code="tree_required", message=f"{method.name} needs a tree")]
        # the tree is the data: only its own errors (duplicate tips) matter
        problems = [
            p
            for p in check_tree_against_names(tree.tree_tips, tree.tree_tips)
            if p.severity == "error"
        ]
        context = check_context(tree, tree)
    else:
        problems = method_problems(method.name, alignment, method.requirements)
        if tree is not None:
            problems += [
                p
                for p in check_tree_against_names(tree.tree_tips, alignment.names)
                if p.severity == "error"
            ]
        context = check_context(alignment, tree)
    if method.requirements.needs_labelled_branches and not context.branch_sets.labels:
        problems.append(
            Problem(
                code="labelled_branches_required",
                message=f"{method.name} needs a tree with labelled branches, e.g. "
                "'((a{TEST},b{TEST}){TEST},c,d);'",
            )
        )
    return problems + method.input_problems(options, context)


@dataclass(frozen=True)
class PlannedRun:
    inputs: inputs.HyPhyInputs
    arguments: dict[str, OptionValue]


def plan_run(
    method: HyPhyMethod,
    options: MethodOptions,
    alignment_text: str | None,
    alignment: ValidationReport | None,
    tree: ValidationReport | None,
) -> PlannedRun:
    """Input files and arguments; without an alignment (text or report), the tree alone."""
    if alignment_text is None or alignment is None:
        if tree is None:
            raise ValueError(f"{method.name} needs an alignment or a tree")
        prepared = inputs.prepare_tree_inputs(tree)
    else:
        prepared = inputs.prepare_inputs(
            alignment_text, alignment, tree, needs_tree=method.requirements.needs_tree
        )
    return PlannedRun(prepared, method.arguments(options, prepared.context))


@dataclass(frozen=True)
class RunResult:
    data: dict[str, Any]  # HyPhy's JSON with the user's names
    summary: Summary
    plots: list[PlotSpec]


def read_result(
    method: HyPhyMethod, options: MethodOptions, raw: dict[str, Any], names: dict[str, str]
) -> RunResult:
    data = inputs.finite(inputs.restore_names(raw, names))
    summary = method.summarize(data, options)
    return RunResult(data, summary, method.plots(summary))
