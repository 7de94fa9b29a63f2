"""The HyPhy methods this server runs: one module each, found by name, checked against the catalog.

Every module of this package other than the shared ones (`base`, `options`, `sites`) defines
`METHOD`, an instance of a `HyPhyMethod` subclass. `registry()` imports them once and
`check_against_catalog` (called at start-up) requires every runnable catalog entry to have
its module and every module its runnable catalog entry with the same HyPhy keyword.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from datamonkey_chat.analyses.methods.base import HyPhyMethod
from datamonkey_chat.catalog import Catalog

SHARED_MODULES = frozenset({"base", "options", "sites"})

__all__ = ["HyPhyMethod", "RegistryError", "check_against_catalog", "registry"]


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
