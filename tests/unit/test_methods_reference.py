"""docs/methods.md is written from the method modules: it must match what the code does."""

from __future__ import annotations

from pathlib import Path

from datamonkey_chat.analyses.methods import check_against_catalog, option_list, registry
from datamonkey_chat.analyses.methods.reference import render
from datamonkey_chat.catalog import load_catalog

DOC = Path(__file__).resolve().parents[2] / "docs" / "methods.md"


def test_the_committed_reference_matches_the_code() -> None:
    assert DOC.read_text() == render(), (
        "docs/methods.md is stale: python -m datamonkey_chat.analyses.methods.reference "
        "> docs/methods.md"
    )


def test_every_option_of_every_method_is_documented() -> None:
    text = DOC.read_text()
    for method in registry().values():
        for option in option_list(method):
            assert f"| `{option['name']}` |" in text, (method.id, option["name"])


def test_every_runnable_catalog_method_has_its_module() -> None:
    check_against_catalog(load_catalog())  # raises RegistryError naming what disagrees
