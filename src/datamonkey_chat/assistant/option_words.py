"""Method options said in plain words ("p-value 0.05", "vertebrate mitochondrial code").

The words live in catalog/option_words.json, keyed by option field names; which fields a
method has is read from its options model at run time, so a new option needs a data entry
and no code here. What is read but does not fit the method is reported, never dropped.
Values are passed on as read: the method's model checks ranges when the job is started,
and its error (naming the field) goes back to the user.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from datamonkey_chat.analyses.methods import options_schema, registry
from datamonkey_chat.catalog.knowledge import OptionPhrase, load_option_words

__all__ = ["AppliedOptions", "WordMatch", "apply_words", "match_words", "unread_words"]

TOOL_ARGUMENT = "@"  # fields starting with it are start_analysis arguments, not options


@dataclass(frozen=True)
class WordMatch:
    phrase: OptionPhrase
    text: str  # the words as the user wrote them
    groups: dict[str, str]


@dataclass
class AppliedOptions:
    options: dict[str, Any] = field(default_factory=dict)
    tree: str | None = None  # a tree dataset named by the user
    not_applied: list[str] = field(default_factory=list)


def match_words(text: str) -> tuple[list[WordMatch], str]:
    """Option phrases found in `text`, in data order, and the text with them blanked out."""
    found: list[WordMatch] = []
    for phrase in load_option_words().phrases:
        regex = phrase.regex()
        for match in regex.finditer(text):
            groups = {k: v for k, v in match.groupdict().items() if v is not None}
            found.append(WordMatch(phrase, match.group(0).strip(), groups))
        text = regex.sub(lambda m: " " * len(m.group(0)), text)
    return found, text


def apply_words(matches: Iterable[WordMatch], method_id: str, method_name: str) -> AppliedOptions:
    """The options `matches` give this method; what it has no field for is not applied."""
    result = AppliedOptions()
    method = registry().get(method_id)
    fields = _field_types(method_id) if method else {}
    for match in matches:
        alternative = next(
            (
                alt
                for alt in match.phrase.apply
                if all(name.startswith(TOOL_ARGUMENT) or name in fields for name in alt)
            ),
            None,
        )
        if method is None and not all(n.startswith(TOOL_ARGUMENT) for n in match.phrase.apply[0]):
            result.not_applied.append(
                f'"{match.text}" ({match.phrase.says}: this server has no options model '
                f"for {method_name})"
            )
            continue
        if alternative is None:
            result.not_applied.append(
                f'"{match.text}" ({match.phrase.says}: {method_name} has no such option)'
            )
            continue
        for name, template in alternative.items():
            value = _filled(template, match.groups)
            if name == f"{TOOL_ARGUMENT}tree":
                result.tree = str(value)
                continue
            converted = _converted(value, fields[name])
            if converted is None:
                result.not_applied.append(
                    f'"{match.text}" ({name} must be {fields[name]}, got {value!r})'
                )
            elif name not in result.options:  # the first mention wins
                result.options[name] = converted
    return result


def unread_words(remaining: str, known: Iterable[str]) -> str:
    """Words left after options, method and dataset names and filler: what was not read."""
    ignored = {word.lower() for word in load_option_words().filler} | {
        word.lower() for word in known
    }
    words = re.findall(r"[A-Za-z0-9][\w.+-]*", remaining)
    return " ".join(w for w in words if w.lower().strip(".") not in ignored)


def _filled(template: Any, groups: dict[str, str]) -> Any:
    if isinstance(template, list):
        return [_filled(item, groups) for item in template]
    if isinstance(template, str):
        whole = re.fullmatch(r"\{(\w+)\}", template)
        if whole:
            return groups.get(whole.group(1), "")
        return re.sub(r"\{(\w+)\}", lambda m: groups.get(m.group(1), ""), template)
    return template


def _converted(value: Any, kind: str) -> Any:
    """`value` as the field's JSON type; None when it cannot be."""
    try:
        if kind == "array":
            return value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if len(value) != 1:
                return None
            value = value[0]
        if kind == "number":
            return float(value)
        if kind == "integer":
            number = float(value)
            return int(number) if number.is_integer() else None
        if kind == "boolean":
            return str(value).lower() in ("yes", "true", "on", "1")
        return str(value)
    except (TypeError, ValueError):
        return None


def _field_types(method_id: str) -> dict[str, str]:
    """Each option field of the method and its JSON type (from the model's JSON schema)."""
    schema = options_schema(registry()[method_id])
    defs = schema.get("$defs", {})
    types: dict[str, str] = {}
    for name, spec in schema.get("properties", {}).items():
        types[name] = _json_type(spec, defs)
    return types


def _json_type(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    if "type" in spec:
        return str(spec["type"])
    if "enum" in spec or "const" in spec:
        return "string"
    ref = spec.get("$ref")
    if ref:
        return _json_type(defs.get(ref.rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "allOf", "oneOf"):
        for option in spec.get(key, []):
            kind = _json_type(option, defs)
            if kind != "null":
                return kind
    return "string"
