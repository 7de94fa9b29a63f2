"""The HyPhy methods this server runs: one module each, found by name, checked against the catalog.

Every module of this package other than the shared ones (`SHARED_MODULES`: `base`,
`branches`, `options`, `reference`, `sites`) defines `METHOD`, an instance of a `HyPhyMethod`
subclass. `registry()` imports them once and `check_against_catalog` (called at start-up)
requires every runnable catalog entry to have its module and every module its runnable
catalog entry with the same HyPhy keyword.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from typing import Any

from datamonkey_chat.analyses.methods.base import HyPhyMethod
from datamonkey_chat.catalog import Catalog

SHARED_MODULES = frozenset({"base", "branches", "options", "reference", "sites"})

__all__ = [
    "HyPhyMethod",
    "RegistryError",
    "check_against_catalog",
    "option_list",
    "options_schema",
    "registry",
]


class RegistryError(RuntimeError):
    """The method modules and the catalog disagree: a server must not start like this."""


@cache
def registry() -> dict[str, HyPhyMethod]:
    """Catalog id -> method, for every method module in this package."""
    found: dict[str, HyPhyMethod] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in SHARED_MODULES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        method = getattr(module, "METHOD", None)
        if not isinstance(method, HyPhyMethod):
            raise RegistryError(f"methods/{info.name}.py defines no METHOD")
        if method.id in found:
            raise RegistryError(f"two modules define method '{method.id}'")
        found[method.id] = method
    return found


def check_against_catalog(catalog: Catalog) -> None:
    methods = registry()
    runnable = {m.id: m for m in catalog.methods if m.runnable}
    missing = sorted(set(runnable) - set(methods))
    extra = sorted(set(methods) - set(runnable))
    if missing or extra:
        raise RegistryError(
            f"catalog and method modules disagree: runnable without a module {missing}, "
            f"modules without a runnable catalog entry {extra}"
        )
    for method_id, method in methods.items():
        if runnable[method_id].hyphy_keyword != method.keyword:
            raise RegistryError(
                f"method '{method_id}': catalog keyword {runnable[method_id].hyphy_keyword!r} "
                f"but module keyword {method.keyword!r}"
            )


@cache  # building a schema costs milliseconds, and describe_method asks on every call
def options_schema(method: HyPhyMethod) -> dict[str, Any]:
    """The JSON schema of a method's options (what a language model fills in). Shared:
    callers must not change it."""
    return method.Options.model_json_schema()


def option_list(method: HyPhyMethod) -> list[dict[str, Any]]:
    """Each option: name, type, default, description, choices and range, for people."""
    schema = options_schema(method)
    listed = []
    for name, spec in schema.get("properties", {}).items():
        spec = _resolved(spec, schema)
        entry: dict[str, Any] = {
            "name": name,
            "type": _type(spec),
            "default": spec.get("default"),
        }
        for key in ("description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in spec:
                entry[key] = spec[key]
        if "enum" in spec:
            entry["choices"] = spec["enum"]
        listed.append(entry)
    return listed


def _type(spec: dict[str, Any]) -> str:
    """The JSON type, also of an optional field (`anyOf: [{type: integer}, {type: null}]`)."""
    if "type" in spec:
        return str(spec["type"])
    types = [str(o["type"]) for o in spec.get("anyOf", []) if o.get("type") not in (None, "null")]
    return " or ".join(types) or "string"


def _resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A property with its `$ref` (enums are defined once under $defs) merged in."""
    ref = spec.get("$ref") or next(
        (item.get("$ref") for item in spec.get("allOf", []) if "$ref" in item), None
    )
    if not ref:
        return spec
    target = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    return {**target, **{k: v for k, v in spec.items() if k not in ("$ref", "allOf")}}
