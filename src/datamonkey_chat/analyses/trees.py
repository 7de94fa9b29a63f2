"""Newick trees as data: parsed without recursion, written back with only safe text.

Nothing from an uploaded tree reaches HyPhy as written: we parse it into `Node`s (tip names,
branch lengths, `{LABEL}` branch-set tags; comments dropped), then write a new Newick with
tips renamed to safe identifiers and labels reduced to `[A-Z0-9_]`. Parsing and writing use
explicit stacks, so a deep tree cannot reach Python's recursion limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_BARE_END = set("(),:;[]{}'") | set(" \t\r\n")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Node:
    name: str = ""
    length: float | None = None
    label: str | None = None  # the {LABEL} branch-set tag, as the user wrote it
    children: list[Node] = field(default_factory=list)

    @property
    def is_tip(self) -> bool:
        return not self.children


def parse_newick(text: str) -> Node:
    """The tree in `text`; ValueError with a reason when it is not a Newick tree."""
    root = Node()
    current, stack = root, []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "[":  # comment, e.g. [&R]
            end = text.find("]", i)
            if end < 0:
                raise ValueError("unclosed [comment] in the tree")
            i = end + 1
        elif ch == "(":
            stack.append(current)
            current = Node()
            stack[-1].children.append(current)
            i += 1
        elif ch == ",":
            if not stack:
                raise ValueError("a ',' outside parentheses in the tree")
            current = Node()
            stack[-1].children.append(current)
            i += 1
        elif ch == ")":
            if not stack:
                raise ValueError("unbalanced ')' in the tree")
            current = stack.pop()
            i += 1
        elif ch == ":":
            i, current.length = _read_length(text, i + 1)
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise ValueError("unclosed {label} in the tree")
            label = text[i + 1 : end].strip()
            current.label = label or None
            i = end + 1
        elif ch == ";":
            break
        elif ch == "'":
            i, current.name = _read_quoted(text, i + 1)
        else:
            start = i
            while i < n and text[i] not in _BARE_END:
                i += 1
            if i == start:
                raise ValueError(f"unexpected '{ch}' in the tree")
            current.name = text[start:i]
    if stack:
        raise ValueError("unbalanced '(' in the tree")
    if root.is_tip:
        raise ValueError("the tree has no branches")
    return root


def _read_length(text: str, i: int) -> tuple[int, float | None]:
    while i < len(text) and text[i] in " \t":
        i += 1
    start = i
    while i < len(text) and (text[i].isalnum() or text[i] in ".-+"):
        i += 1
    try:
        value = float(text[start:i])
    except ValueError:
        raise ValueError(f"branch length '{text[start:i][:20]}' is not a number") from None
    return i, value if math.isfinite(value) else None


def _read_quoted(text: str, i: int) -> tuple[int, str]:
    out: list[str] = []
    while i < len(text):
        if text[i] == "'":
            if text[i + 1 : i + 2] == "'":  # '' is a quote inside a quoted name
                out.append("'")
                i += 2
                continue
            return i + 1, "".join(out)
        out.append(text[i])
        i += 1
    raise ValueError("unclosed quoted name in the tree")


def nodes(root: Node) -> Iterator[Node]:
    """Every node, parents before children, without recursion."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))


def tips(root: Node) -> list[Node]:
    return [node for node in nodes(root) if node.is_tip]


def is_rooted(root: Node) -> bool:
    """A rooted tree has a root with exactly two children (an unrooted one, three or more)."""
    return len(root.children) == 2


def safe_label(label: str) -> str:
    """The label as HyPhy gets it: letters, digits and '_' only, upper case."""
    return _UNSAFE.sub("_", label.strip()).upper()


def write_newick(root: Node, tip_name: Callable[[str], str]) -> str:
    """Newick text with tips renamed by `tip_name`, safe labels, no internal names or comments."""
    out: list[str] = []
    # (node, children written?) — an explicit stack instead of recursion
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if node.children and not done:
            out.append("(")
            stack.append((node, True))
            for index, child in enumerate(reversed(node.children)):
                stack.append((child, False))
                if index < len(node.children) - 1:
                    stack.append((_COMMA, True))
            continue
        if node is _COMMA:
            out.append(",")
            continue
        if node.children:
            out.append(")")
        else:
            out.append(tip_name(node.name))
        if node.label and safe_label(node.label).strip("_"):
            out.append("{" + safe_label(node.label) + "}")
        if node.length is not None and node is not root:
            out.append(f":{node.length:.10g}")
    return "".join(out) + ";"


_COMMA = Node(name=",")  # marker on the writing stack
