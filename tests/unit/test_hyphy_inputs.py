"""HyPhy's inputs are written by us from parsed data: nothing from an upload is HyPhy code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datamonkey_chat.analyses.hyphy import HyPhyJobSpec, build_command
from datamonkey_chat.analyses.inputs import prepare_inputs, prepare_tree_inputs, restore_names
from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.runs import method_options, plan_run, run_problems
from datamonkey_chat.analyses.trees import parse_newick, write_newick
from datamonkey_chat.analyses.validation import validate_alignment, validate_tree

HOSTILE_NAMES = ['a"+HYPHY+"', "b&fscanf(stdin)", "c$(rm -rf x)", "d'e"]
SEQUENCES = ["ATGAAACCCGGG", "ATGAAACCCGGA", "ATGAAGCCCGGG", "ATGAAGCCTGGG"]


def hostile_nexus() -> str:
    matrix = "\n".join(
        f"'{name.replace(chr(39), chr(39) * 2)}' {seq}"
        for name, seq in zip(HOSTILE_NAMES, SEQUENCES, strict=True)
    )
    quoted = [f"'{n.replace(chr(39), chr(39) * 2)}'" for n in HOSTILE_NAMES]
    tree = f'(({quoted[0]},{quoted[1]}){{"+Evil+"$(x)}},({quoted[2]},{quoted[3]}){{TEST}});'
    return (
        "#NEXUS\nBEGIN DATA;\nDIMENSIONS NTAX=4 NCHAR=12;\nFORMAT DATATYPE=DNA MISSING=? "
        f"GAP=-;\nMATRIX\n{matrix}\n;\nEND;\nBEGIN TREES;\nTREE t = {tree}\nEND;\n"
    )


def test_hostile_names_and_labels_never_reach_hyphy() -> None:
    text = hostile_nexus()
    report = validate_alignment(text)
    assert report.ok, report.problems
    inputs = prepare_inputs(text, report, None)
    # the FASTA holds only our ids and the sequences
    assert re.fullmatch(r"(>SEQ\d{5}\n[ACGT]+\n)+", inputs.alignment_text)
    # the tree: our ids, safe labels, structure and lengths only
    assert inputs.tree_text is not None
    assert re.fullmatch(r"[()A-Z0-9_,:.{}\-;e+]+", inputs.tree_text), inputs.tree_text
    for name in HOSTILE_NAMES:
        assert name not in inputs.tree_text and name not in inputs.alignment_text
    assert inputs.context.branch_sets.hyphy("test") == "TEST"
    assert all(re.fullmatch(r"[A-Z0-9_]+", v) for v in inputs.context.branch_sets.labels.values())
    # the user's names come back in what HyPhy writes
    hyphy_json = {
        "tested": {"0": {"SEQ00001": "test"}},
        "input": {"trees": {"0": "(SEQ00001,SEQ00002)"}},
    }
    restored = restore_names(hyphy_json, inputs.names)
    assert list(restored["tested"]["0"]) == [HOSTILE_NAMES[0]]
    assert HOSTILE_NAMES[1] in restored["input"]["trees"]["0"]


def test_a_fasta_without_a_tree_gets_a_safe_neighbour_joining_tree() -> None:
    names = ["x;y", 'q"+r+"', "p$(s)", "t u"]
    text = "".join(f">{n}\n{seq}\n" for n, seq in zip(names, SEQUENCES, strict=True))
    report = validate_alignment(text)
    assert report.ok, report.problems
    inputs = prepare_inputs(text, report, None)
    assert inputs.tree_text is not None and "neighbour-joining" in " ".join(inputs.notes)
    assert sorted(re.findall(r"SEQ\d{5}", inputs.tree_text)) == sorted(inputs.names)
    assert re.fullmatch(r"[()A-Z0-9_,:.\-;e+]+", inputs.tree_text), inputs.tree_text
    assert sorted(inputs.names.values()) == sorted(names)


def test_deep_trees_are_written_without_recursion() -> None:
    depth = 50_000
    newick = "(" * depth + "a" + ",b)" * depth + ";"
    written = write_newick(parse_newick(newick), str.upper)
    assert written.count("(") == depth and written.startswith("((") and "A" in written


def test_a_list_option_repeats_the_flag() -> None:
    options = {"branch-set": ["A", "B"], "p-value": 0.05}
    spec = HyPhyJobSpec("j", "contrast-fel", Path("a.fas"), options=options)
    argv = build_command(Path("/bin/hyphy"), spec, Path("a.fas"), Path("t.nwk"), Path("o.json"))
    assert argv[argv.index("--branch-set") :][:4] == ["--branch-set", "A", "--branch-set", "B"]


def hostile_tree() -> str:
    quoted = [f"'{n.replace(chr(39), chr(39) * 2)}'" for n in HOSTILE_NAMES]
    return f'(({quoted[0]}:0.1,{quoted[1]}:0.2){{"+Evil+"$(x)}},({quoted[2]},{quoted[3]}){{TEST}});'


def test_a_tree_alone_gets_safe_names_and_no_alignment() -> None:
    """A method that reads only a tree (Slatkin-Maddison) gets the tree alone: tips renamed
    to SEQ ids in tree order, labels reduced, the user's names kept to restore them."""
    report = validate_tree(hostile_tree())
    assert report.ok, report.problems
    inputs = prepare_tree_inputs(report)
    assert inputs.alignment_text is None
    assert inputs.tree_text is not None
    assert re.fullmatch(r"[()A-Z0-9_,:.{}\-;e+]+", inputs.tree_text), inputs.tree_text
    assert re.findall(r"SEQ\d{5}", inputs.tree_text) == [f"SEQ0000{i}" for i in range(1, 5)]
    assert ":0.1" in inputs.tree_text and "{TEST}" in inputs.tree_text
    for name in HOSTILE_NAMES:
        assert name not in inputs.tree_text
    assert inputs.names == {f"SEQ0000{i}": n for i, n in enumerate(HOSTILE_NAMES, start=1)}
    assert inputs.context.tip_names == {n: s for s, n in inputs.names.items()}
    assert inputs.context.branch_sets.hyphy("test") == "TEST"
    assert inputs.context.tree_available and inputs.context.tree_rooted
    restored = restore_names({"partitions": {"0": {"0": "SEQ00003"}}}, inputs.names)
    assert restored["partitions"]["0"]["0"] == HOSTILE_NAMES[2]


def test_slatkin_plans_a_run_from_a_tree_alone() -> None:
    """Compartments are matched on the user's tip names and handed to HyPhy as safe ids."""
    method = registry()["slatkin-maddison"]
    tree = validate_tree("((lung_1,lung_2),(blood_1,(blood_2,blood_3)));")
    options = method_options(
        method,
        {
            "compartment_definitions": [
                {"regexp": "^lung", "description": "Lung"},
                {"regexp": "^blood", "description": "Blood"},
            ]
        },
    )
    assert run_problems(method, options, None, tree) == []
    planned = plan_run(method, options, None, None, tree)
    assert planned.inputs.alignment_text is None
    assert planned.arguments["regexp-1"] == "^(SEQ00001|SEQ00002)$"
    assert planned.arguments["regexp-2"] == "^(SEQ00003|SEQ00004|SEQ00005)$"
    assert planned.inputs.names["SEQ00004"] == "blood_2"
    duplicated = validate_tree("((lung_1,lung_1),(blood_1,blood_2));")
    codes = [p.code for p in run_problems(method, options, None, duplicated)]
    assert "duplicate_tip" in codes


def test_a_tree_only_command_has_no_alignment() -> None:
    spec = HyPhyJobSpec("j", "sm", None, Path("t.nwk"), options={"groups": 2})
    argv = build_command(Path("/bin/hyphy"), spec, None, Path("t.nwk"), Path("o.json"))
    assert "--alignment" not in argv
    assert argv[:4] == ["/bin/hyphy", "sm", "--tree", "t.nwk"]
    with pytest.raises(ValueError, match="alignment or a tree"):
        build_command(Path("/bin/hyphy"), spec, None, None, Path("o.json"))
