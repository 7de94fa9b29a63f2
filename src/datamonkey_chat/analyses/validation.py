"""Validate uploaded alignments and trees before HyPhy ever sees them.

Pure functions: text in, a `ValidationReport` out. Every problem names the sequence and
the (1-based) alignment column or codon where it occurs, so a 422 body can be precise.

Severity: structural problems (garbage, unequal lengths, invalid characters, duplicate
names, tree/name mismatch) are errors. Codon-readiness problems (length not divisible
by 3, stop codons) are warnings at upload time, because nucleotide methods such as GARD
accept such data; `method_problems` turns them into errors for codon methods.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from io import StringIO
from itertools import accumulate, islice
from typing import Literal

from Bio import Phylo, SeqIO
from Bio.Data import CodonTable
from Bio.Nexus import Nexus
from Bio.Phylo.Newick import Clade, Tree
from pydantic import BaseModel, Field

Severity = Literal["error", "warning"]
DataType = Literal["nucleotide", "protein"]
FileFormat = Literal["fasta", "nexus", "phylip", "newick"]

MAX_PROBLEMS = 200  # a 422 body stays readable; the last entry says how many were cut
MAX_POSITIONS_LISTED = 5  # per sequence and problem kind
# Deeper trees are refused (422): recursive tree walkers, Biopython's among them, fail on them.
# A tree nests at most as deep as it has tips (a perfect ladder); real uploads stay far below.
MAX_TREE_DEPTH = 2000
MAX_DECLARED_DIGITS = 12  # sizes in headers: longer numbers are absurd, not worth parsing

NUCLEOTIDE_CHARS = frozenset("ACGTURYSWKMBDHVN")
PROTEIN_CHARS = frozenset("ACDEFGHIKLMNPQRSTVWYBZJX")
GAP_CHARS = frozenset("-?.")
STRICT_NUCLEOTIDES = frozenset("ACGTU-?.N")

# HyPhy genetic-code names (its --code option) mapped to NCBI translation table ids.
GENETIC_CODES: dict[str, int] = {
    "Universal": 1,
    "Vertebrate-mtDNA": 2,
    "Yeast-mtDNA": 3,
    "Mold-Protozoan-mtDNA": 4,
    "Invertebrate-mtDNA": 5,
    "Ciliate-Nuclear": 6,
    "Echinoderm-mtDNA": 9,
    "Euplotid-Nuclear": 10,
    "Alt-Yeast-Nuclear": 12,
    "Ascidian-mtDNA": 13,
    "Flatworm-mtDNA": 14,
    "Blepharisma-Nuclear": 15,
    "Chlorophycean-mtDNA": 16,
    "Trematode-mtDNA": 21,
    "Scenedesmus-obliquus-mtDNA": 22,
    "Thraustochytrium-mtDNA": 23,
    "Pterobranchia-mtDNA": 24,
    "SR1-and-Gracilibacteria": 25,
    "Pachysolen-Nuclear": 26,
    "Mesodinium-Nuclear": 29,
    "Peritrich-Nuclear": 30,
    "Cephalodiscidae-mtDNA": 33,
}

_ANNOTATION = re.compile(r"\{[^{}]*\}")  # HyPhy branch labels: name{Foreground}
_TREE_BLOCK = re.compile(r"begin\s+trees\s*;(.*?)end(?:block)?\s*;", re.I | re.S)
_TREE_STATEMENT = re.compile(
    r"^\s*u?tree\s+\*?\s*([^=]+?)\s*=\s*(?:\[[^\]]*\]\s*)*(.*)$", re.I | re.S
)
_NEXUS_COMMENT = re.compile(r"\[[^\]]*\]")
# Only these blocks reach Bio.Nexus: SETS/ASSUMPTIONS ranges (charset x = 1-999999999) would
# be expanded into lists, and nothing outside the matrix is used.
_NEXUS_DATA_BLOCK = re.compile(
    r"begin\s+(?:data|characters|taxa)\s*;.*?end(?:block)?\s*;", re.I | re.S
)
_NEXUS_DIMENSIONS = re.compile(r"\bdimensions\b([^;]*)", re.I)
_NEXUS_DIMENSION = re.compile(r"\b(ntax|nchar)\s*=\s*(\d+)", re.I)
_NEWICK_QUOTED_OR_COMMENT = re.compile(r"'[^']*'|\[[^\]]*\]")
_WHITESPACE = " \t\r\n\v\f"
_PAREN_STEP = {"(": 1, ")": -1}


class Problem(BaseModel):
    code: str
    message: str
    severity: Severity = "error"
    sequence: str | None = None
    position: int | None = Field(default=None, description="1-based alignment column")
    codon: int | None = Field(default=None, description="1-based codon index")


class ValidationReport(BaseModel):
    kind: Literal["alignment", "tree"]
    format: FileFormat | None = None
    data_type: DataType | None = None
    sequences: int = 0
    sites: int = 0
    codons: int | None = None
    names: list[str] = Field(default_factory=list)
    has_tree: bool = False
    tree_newick: str | None = None
    tree_tips: list[str] = Field(default_factory=list)
    branch_labels: list[str] = Field(default_factory=list)
    genetic_code: str = "Universal"
    codon_ready: bool = False
    problems: list[Problem] = Field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


# ---------------------------------------------------------------- parsing helpers


@dataclass
class _Parsed:
    format: FileFormat
    records: list[tuple[str, str]] = field(default_factory=list)
    declared_type: str | None = None
    trees: list[str] = field(default_factory=list)  # Newick text, translate applied


class TreeTooDeepError(ValueError):
    """A tree nested deeper than MAX_TREE_DEPTH."""


class _ParseError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _problem(code: str, message: str, **kw: object) -> Problem:
    return Problem(code=code, message=message, **kw)  # type: ignore[arg-type]


def detect_format(text: str) -> FileFormat | None:
    """Guess the file format from its first meaningful characters."""
    stripped = text.lstrip("\ufeff \t\r\n")
    first_line = stripped.split("\n", 1)[0].strip()
    if first_line.upper().startswith("#NEXUS"):
        return "nexus"
    if stripped.startswith(">") or (stripped.startswith("#") and len(first_line) > 1):
        return "fasta"  # '#name' headers are HyPhy's own FASTA flavour (e.g. brown.nuc)
    if stripped.startswith("(") and stripped.rstrip().endswith(";"):
        return "newick"
    if re.fullmatch(r"\d+\s+\d+(\s+\S+)*", first_line):
        return "phylip"
    return None


def _parse_fasta(text: str) -> _Parsed:
    lines = text.lstrip("\ufeff \t\r\n").splitlines()
    if lines and lines[0].lstrip().startswith("#"):
        lines = [">" + ln.lstrip()[1:] if ln.lstrip().startswith("#") else ln for ln in lines]
    records = [
        (rec.description.strip(), str(rec.seq))
        for rec in SeqIO.parse(StringIO("\n".join(lines)), "fasta")
    ]
    return _Parsed("fasta", records)


def _phylip_attempts(text: str) -> Iterable[list[tuple[str, str]]]:
    for fmt in ("phylip-relaxed", "phylip-sequential", "phylip"):
        try:
            yield [(r.id, str(r.seq)) for r in SeqIO.parse(StringIO(text), fmt)]
        except (ValueError, AssertionError):
            continue
    yield _parse_relaxed_sequential_phylip(text)


def _parse_relaxed_sequential_phylip(text: str) -> list[tuple[str, str]]:
    """Sequential PHYLIP with whitespace-separated names and wrapped lines (not in Biopython)."""
    tokens = text.split()
    ntax, nchar = int(tokens[0]), int(tokens[1])
    rest = tokens[2:]
    records: list[tuple[str, str]] = []
    i = 0
    while i < len(rest) and len(records) < ntax:
        name, seq = rest[i], ""
        i += 1
        while i < len(rest) and len(seq) < nchar:
            seq += rest[i]
            i += 1
        records.append((name, seq))
    return records


def _present_characters(text: str) -> int:
    """Non-blank characters: an upper bound on the sequence characters a file holds."""
    return len(text) - sum(text.count(c) for c in _WHITESPACE)


def _declared_number(digits: str) -> int:
    return int(digits) if len(digits) <= MAX_DECLARED_DIGITS else 10**MAX_DECLARED_DIGITS


def _check_declared_size(what: str, ntax: int, nchar: int, text: str) -> None:
    """Refuse a header whose sizes the file cannot hold, before anything is allocated."""
    present = _present_characters(text)
    if ntax * nchar > present:
        raise _ParseError(
            _problem(
                "declared_size_mismatch",
                f"The {what} announces {ntax} sequences of {nchar} sites "
                f"({ntax * nchar} characters), but the file holds only {present} "
                "non-blank characters",
            )
        )


def _parse_phylip(text: str) -> _Parsed:
    header = text.lstrip("\ufeff \t\r\n").split("\n", 1)[0].split()
    ntax, nchar = _declared_number(header[0]), _declared_number(header[1])
    _check_declared_size("PHYLIP header", ntax, nchar, text)
    best: list[tuple[str, str]] = []
    for records in _phylip_attempts(text):
        if len(records) == ntax and all(len(s) == nchar for _, s in records):
            return _Parsed("phylip", records)
        if len(records) == ntax and not best:
            best = records
    if best:
        return _Parsed("phylip", best)  # lengths disagree: reported precisely later
    raise _ParseError(
        _problem(
            "parse_error",
            f"PHYLIP header announces {ntax} sequences of {nchar} sites, "
            "but the body could not be read as relaxed, strict, interleaved or sequential PHYLIP",
        )
    )


def _split_nexus_trees(text: str) -> tuple[str, list[str]]:
    """Remove TREES blocks (Bio.Nexus rejects HyPhy {labels}) and return their trees."""
    trees: list[str] = []
    for block in _TREE_BLOCK.findall(text):
        trees.extend(_trees_from_block(block))
    return _TREE_BLOCK.sub("", text), trees


def _trees_from_block(block: str) -> list[str]:
    statements = [s.strip() for s in _split_statements(block) if s.strip()]
    translate: dict[str, str] = {}
    trees: list[str] = []
    for stmt in statements:
        head = stmt.split(None, 1)[0].lower()
        if head == "translate":
            for pair in stmt.split(None, 1)[1].split(","):
                parts = pair.split(None, 1)
                if len(parts) == 2:
                    translate[parts[0]] = parts[1].strip().strip("'\"")
        elif head in ("tree", "utree"):
            m = _TREE_STATEMENT.match(stmt)
            if m:
                trees.append(_translate_newick(m.group(2).strip() + ";", translate))
    return trees


def _split_statements(block: str) -> list[str]:
    out: list[str] = []
    buf: list[str] = []
    quoted = False
    for ch in block:
        if ch == "'":
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    out.append("".join(buf))
    return out


def _translate_newick(newick: str, table: dict[str, str]) -> str:
    if not table:
        return newick

    def sub(m: re.Match[str]) -> str:
        name = m.group(2)
        return m.group(1) + _quote_name(table.get(name, name))

    return re.sub(r"([(,])\s*([^(),:;{}\[\]\s]+)", sub, newick)


def _quote_name(name: str) -> str:
    return f"'{name}'" if re.search(r"[\s(),:;\[\]']", name) else name


def _check_nexus_dimensions(body: str) -> None:
    """DIMENSIONS (in DATA, CHARACTERS or TAXA) must fit in the file's characters."""
    declared = {"ntax": 1, "nchar": 1}
    for statement in _NEXUS_DIMENSIONS.findall(_NEXUS_COMMENT.sub("", body)):
        for key, digits in _NEXUS_DIMENSION.findall(statement):
            key = key.lower()
            declared[key] = max(declared[key], _declared_number(digits))
    _check_declared_size("NEXUS DIMENSIONS statement", declared["ntax"], declared["nchar"], body)


def _parse_nexus(text: str) -> _Parsed:
    body, trees = _split_nexus_trees(text)
    declared = re.search(r"datatype\s*=\s*(\w+)", body, re.I)
    declared_type = declared.group(1).lower() if declared else None
    if not re.search(r"\bmatrix\b", body, re.I):
        return _Parsed("nexus", [], declared_type, trees)  # a tree-only NEXUS file
    _check_nexus_dimensions(body)
    try:
        nexus = Nexus.Nexus()
        nexus.read("#NEXUS\n" + "\n".join(_NEXUS_DATA_BLOCK.findall(body)))
        records = [(name, str(nexus.matrix[name])) for name in nexus.taxlabels]
    except Exception:  # Bio.Nexus fails opaquely (even StopIteration) on ragged matrices
        records = _parse_nexus_matrix(body)
    return _Parsed("nexus", records, declared_type, trees)


def _parse_nexus_matrix(body: str) -> list[tuple[str, str]]:
    """Tolerant MATRIX reader used only to explain what Bio.Nexus refused."""
    m = re.search(r"\bmatrix\b(.*?);", _NEXUS_COMMENT.sub("", body), re.I | re.S)
    if not m:
        raise _ParseError(_problem("parse_error", "NEXUS file has no readable MATRIX"))
    seqs: dict[str, str] = {}
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line:
            continue
        nm = re.match(r"'([^']*)'\s*(.*)$|(\S+)\s*(.*)$", line)
        if not nm:
            continue
        name = nm.group(1) if nm.group(1) is not None else nm.group(3)
        chars = (nm.group(2) if nm.group(1) is not None else nm.group(4)) or ""
        seqs[name] = seqs.get(name, "") + re.sub(r"\s", "", chars)
    if not seqs:
        raise _ParseError(_problem("parse_error", "NEXUS MATRIX contains no sequences"))
    return list(seqs.items())


def _parse(text: str, fmt: FileFormat) -> _Parsed:
    if fmt == "fasta":
        return _parse_fasta(text)
    if fmt == "phylip":
        return _parse_phylip(text)
    if fmt == "nexus":
        return _parse_nexus(text)
    return _Parsed("newick", [], None, [text.strip()])


# ---------------------------------------------------------------- tree helpers


def branch_labels(newick: str) -> list[str]:
    """HyPhy-style branch labels ({Foreground}) found in a Newick string."""
    return sorted({m.strip("{}") for m in _ANNOTATION.findall(newick) if m.strip("{} ")})


def newick_depth(newick: str) -> int:
    """How deeply the parentheses of a Newick string nest (quoted labels and comments aside)."""
    parens = re.findall(r"[()]", _NEWICK_QUOTED_OR_COMMENT.sub("", newick))
    return max(accumulate(map(_PAREN_STEP.__getitem__, parens)), default=0)


def iter_clades(root: Clade) -> Iterator[Clade]:
    """Every clade under `root` in pre-order, without recursion (Biopython's walkers recurse
    and fail on deep trees)."""
    stack = [root]
    while stack:
        clade = stack.pop()
        yield clade
        stack.extend(reversed(clade.clades))


def parse_newick(newick: str) -> Tree:
    """A Newick tree (HyPhy {labels} removed); ValueError when it cannot be parsed or nests
    deeper than MAX_TREE_DEPTH. Walk the result with iter_clades, not Biopython's methods."""
    plain = _ANNOTATION.sub("", newick.strip())
    if not plain.endswith(";"):
        plain += ";"
    depth = newick_depth(plain)
    if depth > MAX_TREE_DEPTH:
        raise TreeTooDeepError(
            f"the Newick tree nests {depth} levels deep; at most {MAX_TREE_DEPTH} are accepted"
        )
    try:
        tree: Tree = Phylo.read(StringIO(plain), "newick")  # Biopython's parser loops
    except Exception as exc:  # Bio.Phylo raises several unrelated types
        raise ValueError(f"the Newick tree could not be parsed: {exc}") from exc
    return tree


def tree_tips(newick: str) -> list[str]:
    """Tip names of a Newick tree; raises ValueError when it cannot be parsed."""
    tree = parse_newick(newick)
    tips = [c.name for c in iter_clades(tree.root) if not c.clades]
    if len(tips) < 2 or any(not t for t in tips):
        raise ValueError("the Newick tree needs at least two named tips")
    return [str(t) for t in tips]


def hyphy_name(name: str) -> str:
    """HyPhy renames sequences/tips to identifiers; compare names the way it will."""
    return re.sub(r"\W", "_", name.strip())


# ---------------------------------------------------------------- checks


def _detect_type(records: Sequence[tuple[str, str]], declared: str | None) -> DataType:
    if declared in ("dna", "rna", "nucleotide"):
        return "nucleotide"
    if declared == "protein":
        return "protein"
    # str.count runs in C: a per-character loop took seconds on a 20 MB alignment
    total = nucleotide = 0
    for _, seq in records:
        upper = seq.upper()
        total += len(upper) - sum(upper.count(c) for c in GAP_CHARS)
        nucleotide += sum(upper.count(c) for c in STRICT_NUCLEOTIDES - GAP_CHARS)
    return "nucleotide" if nucleotide / (total or 1) >= 0.9 else "protein"


def _positions_text(positions: list[int], total: int | None = None) -> str:
    """The first few positions, then how many more (of `total`, default all given)."""
    shown = ", ".join(str(p) for p in positions[:MAX_POSITIONS_LISTED])
    more = (len(positions) if total is None else total) - min(len(positions), MAX_POSITIONS_LISTED)
    return shown + (f" and {more} more" if more > 0 else "")


def check_names(names: Sequence[str]) -> list[Problem]:
    problems = []
    for name, n in Counter(names).items():
        if n > 1:
            problems.append(
                _problem(
                    "duplicate_name", f"Sequence name '{name}' occurs {n} times", sequence=name
                )
            )
    seen: dict[str, str] = {}
    for name in dict.fromkeys(names):
        key = hyphy_name(name)
        if key in seen:
            problems.append(
                _problem(
                    "duplicate_name",
                    f"Sequence names '{seen[key]}' and '{name}' both become '{key}' in HyPhy",
                    sequence=name,
                )
            )
        seen.setdefault(key, name)
        if not name.strip():
            problems.append(_problem("empty_name", "A sequence has an empty name"))
    return problems


def check_lengths(records: Sequence[tuple[str, str]]) -> list[Problem]:
    lengths = Counter(len(s) for _, s in records)
    if len(lengths) <= 1:
        return []
    expected = lengths.most_common(1)[0][0]
    return [
        _problem(
            "unequal_length",
            f"Sequence '{name}' has {len(seq)} sites; most sequences have {expected}",
            sequence=name,
            position=min(len(seq), expected) + 1,
        )
        for name, seq in records
        if len(seq) != expected
    ]


def check_characters(records: Sequence[tuple[str, str]], data_type: DataType) -> list[Problem]:
    allowed = (NUCLEOTIDE_CHARS if data_type == "nucleotide" else PROTEIN_CHARS) | GAP_CHARS
    problems = []
    for name, seq in records:
        invalid = {c for c in set(seq) if c.upper() not in allowed}  # set(): C speed
        if not invalid:
            continue
        finder = re.compile("|".join(map(re.escape, sorted(invalid))))
        positions = [m.start() + 1 for m in islice(finder.finditer(seq), MAX_POSITIONS_LISTED)]
        count = sum(seq.count(c) for c in invalid)
        problems.append(
            _problem(
                "invalid_character",
                f"Sequence '{name}' has {count} character(s) invalid in {data_type} data "
                f"('{''.join(sorted(invalid))}') at site(s) {_positions_text(positions, count)}",
                sequence=name,
                position=positions[0],
            )
        )
    return problems


def _stop_codons(genetic_code: str) -> frozenset[str]:
    if genetic_code not in GENETIC_CODES:
        raise ValueError(
            f"unknown genetic code '{genetic_code}'; known: {', '.join(GENETIC_CODES)}"
        )
    table = CodonTable.unambiguous_dna_by_id[GENETIC_CODES[genetic_code]]
    return frozenset(table.stop_codons)


def check_codons(
    records: Sequence[tuple[str, str]], genetic_code: str = "Universal"
) -> list[Problem]:
    """Codon-readiness: length divisible by 3 and no stop codons (warnings, see module doc)."""
    stops = _stop_codons(genetic_code)
    problems: list[Problem] = []
    sites = len(records[0][1]) if records else 0
    if sites % 3:
        problems.append(
            _problem(
                "not_codon_aligned",
                f"The alignment has {sites} sites, which is not divisible by 3 "
                f"({sites % 3} extra); codon methods need whole codons",
                severity="warning",
            )
        )
    for name, seq in records:
        problems.extend(
            _stop_codon_problems(name, seq.upper().replace("U", "T"), stops, genetic_code)
        )
    return problems


def _stop_codon_problems(
    name: str, seq: str, stops: frozenset[str], genetic_code: str
) -> list[Problem]:
    found = _stop_codon_indices(seq, stops)
    if not found:
        return []
    last_codon = len(seq.rstrip("-?.")) // 3
    terminal = found == [last_codon] and len(seq.rstrip("-?.")) % 3 == 0
    where = "a terminal" if terminal else f"{len(found)}"
    return [
        _problem(
            "stop_codon",
            f"Sequence '{name}' has {where} stop codon(s) in the {genetic_code} code at "
            f"codon(s) {_positions_text(found)} (site {(found[0] - 1) * 3 + 1}); "
            + ("remove the terminal stop codon" if terminal else "HyPhy codon models reject them"),
            severity="warning",
            sequence=name,
            position=(found[0] - 1) * 3 + 1,
            codon=found[0],
        )
    ]


@lru_cache(maxsize=32)
def _codon_scanner(stops: frozenset[str]) -> re.Pattern[str]:
    """Matches whole codons up to (not including) the next in-frame stop codon."""
    return re.compile(r"(?:(?!" + "|".join(sorted(stops)) + r")(?s:...))*+")


def _stop_codon_indices(seq: str, stops: frozenset[str]) -> list[int]:
    """1-based codon indices of in-frame stop codons; the regex skips the others in C."""
    scanner, found, pos = _codon_scanner(stops), [], 0
    while (match := scanner.match(seq, pos)) and match.end() + 3 <= len(seq):
        found.append(match.end() // 3 + 1)
        pos = match.end() + 3
    return found


def check_tree_against_names(tips: Sequence[str], names: Sequence[str]) -> list[Problem]:
    """Tree tips and sequence names must be the same set (compared as HyPhy will)."""
    by_key = {hyphy_name(n): n for n in names}
    tip_keys = {hyphy_name(t): t for t in tips}
    problems = [
        _problem("duplicate_tip", f"Tree tip '{t}' occurs {n} times", sequence=t)
        for t, n in Counter(tips).items()
        if n > 1
    ]
    extra = [tip_keys[k] for k in tip_keys if k not in by_key]
    missing = [by_key[k] for k in by_key if k not in tip_keys]
    if extra:
        problems.append(
            _problem(
                "tree_extra_tips",
                f"{len(extra)} tree tip(s) have no sequence: {', '.join(sorted(extra))}",
            )
        )
    if missing:
        problems.append(
            _problem(
                "tree_missing_tips",
                f"{len(missing)} sequence(s) are not in the tree: {', '.join(sorted(missing))}",
            )
        )
    return problems


def _cap(problems: list[Problem]) -> list[Problem]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    cut = len(problems) - MAX_PROBLEMS + 1
    return problems[: MAX_PROBLEMS - 1] + [
        _problem("too_many_problems", f"{cut} further problems were not listed")
    ]


# ---------------------------------------------------------------- public entry points


def validate_tree(text: str) -> ValidationReport:
    """Validate a separate tree file (Newick, or NEXUS with a TREES block)."""
    report = ValidationReport(kind="tree")
    fmt = detect_format(text)
    newick: str | None = None
    if fmt == "newick":
        newick = text.strip()
    elif fmt == "nexus":
        _, trees = _split_nexus_trees(text)
        newick = trees[0] if trees else None
    report.format = fmt if fmt in ("newick", "nexus") else None
    if newick is None:
        report.problems = [
            _problem("parse_error", "This is not a Newick tree: expected text like '((a,b),c);'")
        ]
        return report
    return _fill_tree(report, newick)


def _fill_tree(report: ValidationReport, newick: str) -> ValidationReport:
    try:
        report.tree_tips = tree_tips(newick)
    except ValueError as exc:
        code = "tree_too_deep" if isinstance(exc, TreeTooDeepError) else "tree_parse_error"
        report.problems.append(_problem(code, str(exc)[:300]))
        return report
    report.has_tree = True
    report.tree_newick = newick
    report.branch_labels = branch_labels(newick)
    report.names = report.tree_tips
    report.sequences = len(report.tree_tips)
    return report


def validate_alignment(text: str, genetic_code: str = "Universal") -> ValidationReport:
    """Validate an alignment (FASTA, NEXUS with optional trees, PHYLIP)."""
    report = ValidationReport(kind="alignment", genetic_code=genetic_code)
    _stop_codons(genetic_code)  # unknown code: ValueError for the caller, not a data problem
    fmt = detect_format(text) if text.strip() else None
    if fmt is None or fmt == "newick":
        report.problems = [_unrecognized(text, fmt)]
        return report
    report.format = fmt
    try:
        parsed = _parse(text, fmt)
    except _ParseError as exc:
        report.problems = [exc.problem]
        return report
    except Exception as exc:  # Biopython's parsers raise many types on garbage
        report.problems = [
            _problem("parse_error", f"Could not read this {fmt} file: {_first_line(exc)}")
        ]
        return report
    return _fill_alignment(report, parsed)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _unrecognized(text: str, fmt: FileFormat | None) -> Problem:
    if not text.strip():
        return _problem("empty", "The file is empty")
    if fmt == "newick":
        return _problem("not_an_alignment", "This is a Newick tree, not an alignment")
    return _problem(
        "unrecognized_format",
        "Unrecognized format: expected FASTA ('>name' lines), NEXUS ('#NEXUS' first) "
        "or PHYLIP (first line 'N_SEQUENCES N_SITES')",
    )


def _fill_alignment(report: ValidationReport, parsed: _Parsed) -> ValidationReport:
    records = parsed.records
    problems: list[Problem] = []
    if len(records) < 2:
        problems.append(
            _problem("too_few_sequences", f"Found {len(records)} sequence(s); at least 2 needed")
        )
    report.names = [n for n, _ in records]
    report.sequences = len(records)
    report.sites = max((len(s) for _, s in records), default=0)
    if records:
        report.data_type = _detect_type(records, parsed.declared_type)
        problems += check_names(report.names)
        problems += check_lengths(records)
        problems += check_characters(records, report.data_type)
    if parsed.trees:
        problems += _embedded_tree(report, parsed.trees[0])
    if report.data_type == "nucleotide" and records and not _has(problems, "unequal_length"):
        codon_problems = check_codons(records, report.genetic_code)
        problems += codon_problems
        report.codon_ready = not codon_problems and not _has(problems, "invalid_character")
        report.codons = report.sites // 3 if report.sites % 3 == 0 else None
    report.problems = _cap(problems)
    return report


def _embedded_tree(report: ValidationReport, newick: str) -> list[Problem]:
    tree_report = _fill_tree(ValidationReport(kind="tree"), newick)
    if not tree_report.has_tree:
        return tree_report.problems
    report.has_tree = True
    report.tree_newick = newick
    report.tree_tips = tree_report.tree_tips
    report.branch_labels = tree_report.branch_labels
    return check_tree_against_names(report.tree_tips, report.names)


def _has(problems: Iterable[Problem], code: str) -> bool:
    return any(p.code == code for p in problems)


# ---------------------------------------------------------------- method compatibility


@dataclass(frozen=True)
class MethodRequirements:
    """What a HyPhy method needs from a dataset (each method module declares its own)."""

    data_types: frozenset[str] = frozenset({"nucleotide"})
    needs_codons: bool = True
    needs_tree: bool = True
    needs_labelled_branches: bool = False
    # False: HyPhy reads only a tree (Slatkin-Maddison); an alignment is optional, a tree is not
    needs_alignment: bool = True


def method_problems(
    method: str, alignment: ValidationReport, requirements: MethodRequirements
) -> list[Problem]:
    """Why `method` (its display name) cannot run on this alignment's data: its errors, the
    wrong data type, and for codon methods the codon warnings as errors; [] if it can.

    The tree and its branch labels are checked per run (`analyses.runs.run_problems`)."""
    name = method.upper()
    problems = [p for p in alignment.problems if p.severity == "error"]
    if alignment.data_type and alignment.data_type not in requirements.data_types:
        wanted = " or ".join(sorted(requirements.data_types))
        problems.append(
            _problem(
                "wrong_data_type",
                f"{name} needs a {wanted} alignment"
                + (" of codons" if requirements.needs_codons else "")
                + f", but this is a {alignment.data_type} alignment",
            )
        )
    elif requirements.needs_codons:
        problems += [
            _as_error(p, name)
            for p in alignment.problems
            if p.severity == "warning" and p.code in ("not_codon_aligned", "stop_codon")
        ]
    return problems


def _as_error(problem: Problem, method: str) -> Problem:
    return problem.model_copy(
        update={"severity": "error", "message": f"{method} needs codon data: {problem.message}"}
    )


def alignment_records(text: str) -> list[tuple[str, str]]:
    """(name, sequence) pairs of an alignment that validated, e.g. to rewrite it as FASTA."""
    fmt = detect_format(text)
    if fmt is None or fmt == "newick":
        raise ValueError("not an alignment")
    return _parse(text, fmt).records
