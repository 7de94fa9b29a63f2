"""HyPhy's input files, written by us from parsed data: nothing from an upload is HyPhy code.

HyPhy reads a NEXUS tree as `NEXUS_FILE_TREE_MATRIX[0][1]="<tree>"` code, and sequence names
with quotes or `;` break its parsers. So HyPhy always gets a FASTA alignment whose sequences
are named `SEQ00001`, `SEQ00002`, ... and a Newick tree re-written from its parsed structure
with those names and safe `{LABEL}` tags (see trees.py). The user's names are put back into
HyPhy's JSON (`restore_names`) before anything is summarized, tabulated or plotted.

The tree is, in order: the separate tree the user chose, the alignment's own (NEXUS) tree,
or a neighbour-joining tree built here (as datamonkey.org does), which the job's notes say.

A method that reads only a tree (`MethodRequirements.needs_alignment` False, e.g.
Slatkin-Maddison) may run without an alignment: `prepare_tree_inputs` then writes the tree
alone, its tips renamed the same way, and HyPhy gets no alignment file.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from datamonkey_chat.analyses import trees
from datamonkey_chat.analyses.methods.base import BranchSets, InputContext
from datamonkey_chat.analyses.validation import ValidationReport, alignment_records, hyphy_name

SAFE_NAME = "SEQ{:05d}"
_SAFE_TOKEN = re.compile(r"\bSEQ\d{5}\b")
_NEWICK_SPECIAL = re.compile(r"[\s(),:;\[\]{}']")


@dataclass(frozen=True)
class HyPhyInputs:
    """The files for one run, the map back to the user's names, and what methods may check."""

    alignment_text: str | None  # FASTA; None for a run on a tree alone
    tree_text: str | None  # Newick
    names: dict[str, str]  # safe id -> the user's sequence name
    context: InputContext
    notes: list[str] = field(default_factory=list)
    alignment_name: str = "alignment.fas"


def prepare_inputs(
    alignment_text: str,
    alignment: ValidationReport,
    tree: ValidationReport | None,
    needs_tree: bool = True,
) -> HyPhyInputs:
    """FASTA + Newick for HyPhy from a validated alignment and (optionally) a separate tree."""
    records = alignment_records(alignment_text)
    safe = {name: SAFE_NAME.format(i) for i, (name, _) in enumerate(records, start=1)}
    fasta = "".join(f">{safe[name]}\n{sequence}\n" for name, sequence in records)
    notes = tree_notes(alignment, tree, needs_tree)
    root = (
        _tree_root(records, alignment, tree) if needs_tree or _has_tree(alignment, tree) else None
    )
    tree_text, sets, rooted = None, BranchSets(), False
    if root is not None:
        by_key = {hyphy_name(name): safe[name] for name, _ in records}
        tree_text = trees.write_newick(root, lambda tip: by_key.get(hyphy_name(tip), tip))
        sets = branch_sets(root)
        rooted = trees.is_rooted(root)
    context = InputContext(
        alignment=alignment,
        tree_available=root is not None,
        tree_rooted=rooted,
        branch_sets=sets,
        tip_names={name: safe[name] for name, _ in records},
    )
    return HyPhyInputs(fasta, tree_text, {v: k for k, v in safe.items()}, context, notes)


def prepare_tree_inputs(tree: ValidationReport) -> HyPhyInputs:
    """Newick for HyPhy from a validated tree alone (no alignment): tips renamed to safe ids
    in tree order, labels reduced to safe tags, the user's names kept for the result."""
    if not tree.tree_newick:
        raise ValueError("A tree is needed to run without an alignment")
    root = trees.parse_newick(tree.tree_newick)
    # one id per distinct name (duplicate tips are refused before a run: run_problems)
    safe: dict[str, str] = {}
    for tip in trees.tips(root):
        safe.setdefault(tip.name, SAFE_NAME.format(len(safe) + 1))
    context = InputContext(
        alignment=tree,  # the only data: methods read its tip names
        tree_available=True,
        tree_rooted=trees.is_rooted(root),
        branch_sets=branch_sets(root),
        tip_names=dict(safe),
    )
    tree_text = trees.write_newick(root, lambda tip: safe[tip])
    return HyPhyInputs(None, tree_text, {v: k for k, v in safe.items()}, context)


def _has_tree(alignment: ValidationReport, tree: ValidationReport | None) -> bool:
    return (tree is not None and tree.has_tree) or alignment.has_tree


def tree_notes(
    alignment: ValidationReport, tree: ValidationReport | None, needs_tree: bool
) -> list[str]:
    """What the user should know about which tree HyPhy gets."""
    if tree is not None and tree.tree_newick and alignment.has_tree:
        return ["The alignment's own tree was set aside: your separate tree is used."]
    if needs_tree and not _has_tree(alignment, tree):
        return [
            "No tree was given, so a neighbour-joining tree (identity distances, Biopython) "
            "was built from the alignment, as datamonkey.org does. Upload a tree to use your own."
        ]
    return []


def _tree_root(
    records: list[tuple[str, str]], alignment: ValidationReport, tree: ValidationReport | None
) -> trees.Node:
    if tree is not None and tree.tree_newick:
        return trees.parse_newick(tree.tree_newick)
    if alignment.tree_newick:
        return trees.parse_newick(alignment.tree_newick)
    return neighbour_joining(records)


def neighbour_joining(records: list[tuple[str, str]]) -> trees.Node:
    """An unrooted NJ tree on identity distances, converted without recursion."""
    from Bio.Align import MultipleSeqAlignment
    from Bio.Phylo.TreeConstruction import DistanceCalculator, DistanceTreeConstructor
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    msa = MultipleSeqAlignment(
        [SeqRecord(Seq(seq.upper()), id=f"t{i}") for i, (_, seq) in enumerate(records)]
    )
    nj = DistanceTreeConstructor().nj(DistanceCalculator("identity").get_distance(msa))
    by_id = {f"t{i}": name for i, (name, _) in enumerate(records)}
    root = trees.Node()
    stack = [(nj.root, root)]
    while stack:
        clade, node = stack.pop()
        if clade.branch_length is not None and math.isfinite(clade.branch_length):
            node.length = max(0.0, float(clade.branch_length))  # NJ can give tiny negatives
        if clade.is_terminal():
            node.name = by_id[str(clade.name)]
        for child in clade.clades:
            child_node = trees.Node()
            node.children.append(child_node)
            stack.append((child, child_node))
    return root


def branch_sets(root: trees.Node) -> BranchSets:
    labels: dict[str, str] = {}
    for node in trees.nodes(root):
        if node.label and trees.safe_label(node.label).strip("_"):
            labels.setdefault(node.label, trees.safe_label(node.label))
    return BranchSets(labels)


# ---------------------------------------------------------------- results


def restore_names(data: Any, names: dict[str, str]) -> Any:
    """HyPhy's JSON with every safe id (as a key, a value or inside a tree string) renamed."""
    if not names:
        return data

    def rename_text(text: str) -> str:
        if text in names:
            return names[text]
        if "SEQ" not in text:
            return text
        return _SAFE_TOKEN.sub(lambda m: _newick_name(names.get(m.group(0), m.group(0))), text)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {rename_text(k) if isinstance(k, str) else k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str):
            return rename_text(value)
        return value

    return walk(data)


def _newick_name(name: str) -> str:
    """A name inside a tree string: quoted when Newick would misread it."""
    return "'" + name.replace("'", "''") + "'" if _NEWICK_SPECIAL.search(name) else name


def finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON has no spelling for them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value
