"""The contract files (`<repo>/../shared/contract/`) and what can be read out of ChatApi.md."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_DIR = REPO_ROOT.parent / "shared" / "contract"
CHAT_API_MD = CONTRACT_DIR / "ChatApi.md"


def contract_file(path: Path = CHAT_API_MD) -> Path:
    """The contract file; CI always has it (it copies `shared/` beside the clone)."""
    if not path.is_file():
        message = f"contract file missing: {path} (copy shared/ beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class DocumentedParameter:
    name: str  # as the client spells it (snake_case)
    type: str
    description: str
    optional: bool


@dataclass
class DocumentedOperation:
    name: str  # create_conversation
    method: str  # POST
    path: str  # /chat/{conversationId}
    summary: str
    example: str
    parameters: list[DocumentedParameter] = field(default_factory=list)
    responses: dict[str, str] = field(default_factory=dict)  # status -> description
    response_headers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        head, *rest = self.name.split("_")
        return head + "".join(part.capitalize() for part in rest)


_INDEX_ROW = re.compile(
    r"^\[\*\*(?P<name>\w+)\*\*\]\(ChatApi\.md#\w+\) \| \*\*(?P<method>[A-Z]+)\*\* (?P<path>\S+)"
    r" \| (?P<summary>.*)$",
    re.MULTILINE,
)
_SECTION = re.compile(r"^# \*\*(\w+)\*\*$", re.MULTILINE)
_EXAMPLE = re.compile(r"```python\n(.*?)```", re.DOTALL)
_PARAMETER_ROW = re.compile(
    r"^ \*\*(?P<name>\w+)\*\* \| (?P<type>.+?)\| (?P<description>.*?) \| (?P<notes>.*?)$",
    re.MULTILINE,
)
_RESPONSE_ROW = re.compile(
    r"^\*\*(?P<status>\d{3})\*\* \| (?P<description>.*?) \| (?P<headers>.*?) \|$", re.MULTILINE
)
_RESPONSE_HEADER = re.compile(r"\* (\S+) - ")


def parse_chat_api(text: str) -> dict[str, DocumentedOperation]:
    """The operations of ChatApi.md: index table, example, parameters and responses."""
    operations = {
        m["name"]: DocumentedOperation(
            m["name"], m["method"], m["path"], m["summary"].strip(), example=""
        )
        for m in _INDEX_ROW.finditer(text)
    }
    sections = _SECTION.split(text)[1:]
    for name, body in zip(sections[::2], sections[1::2], strict=True):
        operation = operations[name]
        example = _EXAMPLE.search(body)
        assert example, f"no example for {name}"
        operation.example = example.group(1)
        for row in _PARAMETER_ROW.finditer(body):
            operation.parameters.append(
                DocumentedParameter(
                    row["name"],
                    row["type"].strip(),
                    html.unescape(row["description"].strip()),
                    "[optional]" in row["notes"],
                )
            )
        for row in _RESPONSE_ROW.finditer(body):
            operation.responses[row["status"]] = html.unescape(row["description"].strip())
            operation.response_headers[row["status"]] = _RESPONSE_HEADER.findall(row["headers"])
    return operations


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
