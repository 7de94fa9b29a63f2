"""Alignment/tree validation before HyPhy sees the data (no HyPhy needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.runs import run_problems
from datamonkey_chat.analyses.validation import (
    MAX_TREE_DEPTH,
    Problem,
    ValidationReport,
    check_tree_against_names,
    detect_format,
    iter_clades,
    newick_depth,
    parse_newick,
    validate_alignment,
    validate_tree,
)

HYPHY_DATA = Path("/usr/share/hyphy/data")

FASTA_OK = """>s1
ATGAAACCCGGGTTT
>s2
ATGAAACCCGGGTTC
>s3
ATGAAGCCCGGGTTT
"""
TREE_OK = "((s1:0.1,s2:0.1):0.05,s3:0.2);"


def codes(report_or_problems: object) -> list[str]:
    problems = getattr(report_or_problems, "problems", report_or_problems)
    return [p.code for p in problems]  # type: ignore[attr-defined]


def run_refused(
    method_id: str,
    alignment: ValidationReport,
    tree: ValidationReport | None = None,
    **options: object,
) -> list[Problem]:
    """What the service reports before queueing a run of `method_id` on these data."""
    method = registry()[method_id]
    return run_problems(method, method.options(options), alignment, tree)


def test_fasta_counts_and_type() -> None:
    r = validate_alignment(FASTA_OK)
    assert (r.format, r.data_type, r.sequences, r.sites, r.codons) == (
        "fasta",
        "nucleotide",
        3,
        15,
        5,
    )
    assert r.names == ["s1", "s2", "s3"]
    assert r.codon_ready and r.ok and r.problems == []


def test_internal_stop_codon_names_sequence_and_codon() -> None:
    text = ">s1\nATGTAACCCGGGTTT\n>s2\nATGAAACCCTGATTT\n>s3\nATGAAACCCGGGTTT\n"
    r = validate_alignment(text)
    stops = [p for p in r.problems if p.code == "stop_codon"]
    assert [(p.sequence, p.codon, p.position) for p in stops] == [("s1", 2, 4), ("s2", 4, 10)]
    assert "Universal" in stops[0].message and not r.codon_ready
    assert r.ok  # a warning at upload; FEL turns it into an error
    fel = run_refused("fel", r, validate_tree("((s1,s2),s3);"))
    assert codes(fel) == ["stop_codon", "stop_codon"]
    assert all(p.severity == "error" and "FEL" in p.message for p in fel)


def test_stop_codon_depends_on_genetic_code() -> None:
    text = ">a\nATGTGAAAA\n>b\nATGAAAAAA\n"  # TGA is Trp in vertebrate mtDNA
    assert "stop_codon" in codes(validate_alignment(text))
    assert "stop_codon" not in codes(validate_alignment(text, genetic_code="Vertebrate-mtDNA"))
    with pytest.raises(ValueError, match="unknown genetic code"):
        validate_alignment(text, genetic_code="Martian")


def test_length_not_divisible_by_three() -> None:
    r = validate_alignment(">a\nATGAAAA\n>b\nATGAAAC\n")
    assert codes(r) == ["not_codon_aligned"] and r.codons is None and not r.codon_ready


def test_unequal_lengths_name_the_short_sequence() -> None:
    r = validate_alignment(">a\nATGAAACCC\n>b\nATGAAACCC\n>c\nATGAAA\n")
    (p,) = r.errors
    assert (p.code, p.sequence, p.position) == ("unequal_length", "c", 7)
    assert "6 sites" in p.message and "9" in p.message


def test_invalid_characters_report_sequence_and_site() -> None:
    r = validate_alignment(">a\nATGAAACCC\n>b\nATG1AAC*C\n")
    (p,) = r.errors
    assert (p.code, p.sequence, p.position) == ("invalid_character", "b", 4)
    assert "'*1'" in p.message and "4, 8" in p.message


def test_duplicate_names() -> None:
    r = validate_alignment(">a\nATG\n>a\nATG\n>b c\nATG\n>b_c\nATG\n")
    dups = [p for p in r.errors if p.code == "duplicate_name"]
    assert [p.sequence for p in dups] == ["a", "b_c"]


def test_protein_detected_and_rejected_by_fel() -> None:
    r = validate_alignment(">a\nMKVLHWQERT\n>b\nMKVLHWQDRT\n")
    assert r.data_type == "protein" and r.codons is None and r.ok
    problems = run_refused("fel", r, validate_tree("(a,b);"))
    assert codes(problems) == ["wrong_data_type"]
    assert problems[0].message == (
        "FEL needs a nucleotide alignment of codons, but this is a protein alignment"
    )


@pytest.mark.parametrize(
    "text",
    ["", "hello world\nthis is not an alignment", "\x00\x01binary", "5 10\nonly one line"],
)
def test_garbage_is_rejected(text: str) -> None:
    r = validate_alignment(text)
    assert not r.ok and r.sequences == 0
    assert codes(r)[0] in (
        "empty",
        "unrecognized_format",
        "parse_error",
        "too_few_sequences",
        "declared_size_mismatch",
    )


def test_newick_given_as_alignment() -> None:
    assert codes(validate_alignment(TREE_OK)) == ["not_an_alignment"]


def test_phylip_relaxed_interleaved_and_sequential() -> None:
    interleaved = "3 15\nseq_one   ATGAAACCC\nseq_two   ATGAAACCC\nthree     ATGAAGCCC\n\n" + (
        "GGGTTT\nGGGTTC\nGGGTTT\n"
    )
    sequential = "3 15\nseq_one\nATGAAACCC\nGGGTTT\nseq_two\nATGAAACCCGGG\nTTC\nthree ATGAAG\n"
    sequential += "CCCGGGTTT\n"
    for text in (interleaved, sequential):
        r = validate_alignment(text)
        assert r.format == "phylip" and r.ok, r.problems
        assert (r.sequences, r.sites, r.names) == (3, 15, ["seq_one", "seq_two", "three"])


def test_nexus_with_embedded_tree_and_labels() -> None:
    text = """#NEXUS
begin data; dimensions ntax=3 nchar=6; format datatype=dna missing=? gap=-;
matrix
'seq one' ATGAAA
s2 ATGAAG
s3 ATG---
;
end;
begin trees;
 translate 1 'seq one', 2 s2, 3 s3;
 tree t = ((1{Foreground}:0.1,2:0.1){Foreground}:0.1,3:0.2);
end;
"""
    r = validate_alignment(text)
    assert r.ok, r.problems
    assert (r.format, r.has_tree, r.sequences, r.codons) == ("nexus", True, 3, 2)
    assert sorted(r.tree_tips) == ["s2", "s3", "seq one"]
    assert r.branch_labels == ["Foreground"]
    assert run_refused("relax", r, test_branches=["Foreground"]) == []
    assert codes(run_refused("relax", r, test_branches=["Test"])) == ["branch_label_missing"]


def test_nexus_ragged_matrix_is_explained() -> None:
    text = "#NEXUS\nbegin data; dimensions ntax=2 nchar=6; format datatype=dna;\nmatrix\n"
    text += "a ATGATG\nb ATGAT\n;\nend;\n"
    r = validate_alignment(text)
    assert [(p.code, p.sequence) for p in r.errors] == [("unequal_length", "b")]


def test_mismatched_tree_lists_missing_and_extra_names() -> None:
    alignment = validate_alignment(FASTA_OK)
    tree = validate_tree("((s1,s2),(s4,s5));")
    assert tree.ok and tree.tree_tips == ["s1", "s2", "s4", "s5"]
    problems = check_tree_against_names(tree.tree_tips, alignment.names)
    assert codes(problems) == ["tree_extra_tips", "tree_missing_tips"]
    assert problems[0].message == "2 tree tip(s) have no sequence: s4, s5"
    assert problems[1].message == "1 sequence(s) are not in the tree: s3"
    assert run_refused("fel", alignment, tree) == problems


def test_tree_file_problems() -> None:
    assert codes(validate_tree("not a tree")) == ["parse_error"]
    assert codes(validate_tree("((a,b),c;")) == ["tree_parse_error"]
    assert validate_tree(TREE_OK).format == "newick"


def test_a_run_needs_no_tree_but_labels_where_the_method_does() -> None:
    r = validate_alignment(FASTA_OK)
    assert run_refused("fel", r) == []  # the job builds a tree
    assert run_refused("gard", r) == []
    assert codes(run_refused("relax", r, validate_tree(TREE_OK)))[0] == (
        "labelled_branches_required"
    )


def test_detect_format() -> None:
    assert detect_format(">a\nACGT") == "fasta"
    assert detect_format("#NEXUS\n") == "nexus"
    assert detect_format("2 4\na ACGT\nb ACGT") == "phylip"
    assert detect_format("(a,b);") == "newick"
    assert detect_format("lorem ipsum") is None


@pytest.mark.skipif(not HYPHY_DATA.exists(), reason="HyPhy example data not installed")
def test_shipped_hyphy_examples() -> None:
    integrase = validate_alignment((HYPHY_DATA / "integrase_BDA.nex").read_text())
    assert integrase.ok and integrase.codon_ready and integrase.has_tree
    assert (integrase.sequences, integrase.sites, integrase.codons) == (11, 864, 288)
    assert sorted(integrase.tree_tips) == sorted(integrase.names)
    assert run_refused("fel", integrase) == []

    p51 = validate_alignment((HYPHY_DATA / "p51.nex").read_text())
    assert p51.ok and (p51.sequences, p51.codons) == (8, 440)

    protein = validate_alignment((HYPHY_DATA / "p51.aa").read_text())
    assert protein.data_type == "protein" and protein.ok
    assert codes(run_refused("fel", protein)) == ["wrong_data_type"]


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    ("text", "announced"),
    [
        ("1000000 4\na ACGT\n", "1000000 sequences of 4 sites"),
        ("999999999 999999999\na ACGT\n", "999999999 sequences of 999999999 sites"),
        ("4 1000000000\na ACGT\nb ACGT\nc ACGT\nd ACGT\n", "4 sequences of 1000000000 sites"),
        ("2 " + "9" * 5000 + "\na ACGT\nb ACGT\n", "2 sequences of 1000000000000 sites"),
        (
            "#NEXUS\nbegin data; dimensions ntax=2 nchar=999999999; format datatype=dna;\n"
            "matrix\na ACGT\nb ACGT\n;\nend;\n",
            "2 sequences of 999999999 sites",
        ),
        (
            "#NEXUS\nbegin taxa; dimensions ntax=99999999; taxlabels a b; end;\n"
            "begin characters; dimensions nchar=4; format datatype=dna;\n"
            "matrix\na ACGT\nb ACGT\n;\nend;\n",
            "99999999 sequences of 4 sites",
        ),
    ],
)
def test_sizes_a_header_announces_must_fit_in_the_file(text: str, announced: str) -> None:
    r = validate_alignment(text)
    (problem,) = r.problems
    assert problem.code == "declared_size_mismatch" and r.sequences == 0
    assert announced in problem.message and "non-blank characters" in problem.message


def test_headers_that_fit_still_parse() -> None:
    r = validate_alignment("2 6\na ACGTAC\nb ACGTAA\n")
    assert r.ok and (r.sequences, r.sites) == (2, 6)


def test_nexus_sets_blocks_never_reach_biopython() -> None:
    # Bio.Nexus would expand this range into a list of a billion positions.
    text = "#NEXUS\nbegin data; dimensions ntax=2 nchar=6; format datatype=dna;\n"
    text += "matrix\na ATGAAA\nb ATGAAG\n;\nend;\nbegin sets; charset big = 1-999999999;\nend;\n"
    r = validate_alignment(text)
    assert r.ok and (r.sequences, r.sites) == (2, 6)


def nested(depth: int, tips: str = "a,b") -> str:
    return "(" * depth + tips + ")" * depth + ";"


@pytest.mark.parametrize("depth", [MAX_TREE_DEPTH + 1, 10_000])
def test_deep_trees_are_refused_not_recursed(depth: int) -> None:
    alone = validate_tree(nested(depth))
    nexus = "#NEXUS\nbegin data; dimensions ntax=2 nchar=3; format datatype=dna;\n"
    nexus += f"matrix\na ATG\nb ATA\n;\nend;\nbegin trees; tree t = {nested(depth)}\nend;\n"
    for report in (alone, validate_alignment(nexus), validate_tree(nexus)):
        assert codes(report) == ["tree_too_deep"], report.problems
        assert f"nests {depth} levels deep" in report.problems[0].message


def test_a_tree_just_under_the_depth_cap_is_walked_without_recursion() -> None:
    tree = nested(MAX_TREE_DEPTH, "'a (x)',b[&comment (]")  # quoted and commented parens
    assert newick_depth(tree) == MAX_TREE_DEPTH
    r = validate_tree(tree)
    assert r.ok and r.tree_tips == ["a (x)", "b"]
    clades = list(iter_clades(parse_newick(tree).root))
    assert (
        len(clades) == MAX_TREE_DEPTH + 2
    )  # the nested clades (the outermost is the root), 2 tips


def test_invalid_characters_are_counted_beyond_those_listed() -> None:
    r = validate_alignment(">a\n" + "ACGT" * 30 + "\n>b\n" + "ACG*" * 30 + "\n")
    (p,) = r.errors
    assert (p.sequence, p.position) == ("b", 4)
    assert "has 30 character(s)" in p.message and "4, 8, 12, 16, 20 and 25 more" in p.message
