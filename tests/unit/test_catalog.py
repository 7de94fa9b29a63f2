"""The method catalog: complete, well-formed, and found by any spelling of a name."""

from __future__ import annotations

import pytest

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.catalog import Catalog, load_catalog

EXPECTED_IDS = {
    "fel", "slac", "meme", "fubar", "busted", "absrel", "relax", "contrast-fel",
    "gard", "bgm", "multi-hit", "fade", "slatkin-maddison", "nrm",
}  # fmt: skip

# HyPhy 2.5.47's command keywords (NRM has none there)
HYPHY_KEYWORDS = {
    "fel": "fel", "slac": "slac", "meme": "meme", "fubar": "fubar", "busted": "busted",
    "absrel": "absrel", "relax": "relax", "contrast-fel": "contrast-fel", "gard": "gard",
    "bgm": "bgm", "multi-hit": "fmm", "fade": "fade", "slatkin-maddison": "sm", "nrm": None,
}  # fmt: skip


def test_catalog_lists_every_method_once() -> None:
    ids = load_catalog().ids()
    assert set(ids) == EXPECTED_IDS
    assert len(ids) == len(set(ids))


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()
    assert isinstance(load_catalog(), Catalog)


@pytest.mark.parametrize("method_id", sorted(EXPECTED_IDS))
def test_every_method_is_fully_described(method_id: str) -> None:
    method = load_catalog().find(method_id)
    assert method is not None
    for text in (method.summary, method.question, method.run_time, method.results):
        assert text.strip()
    assert method.inputs and method.selection_types and method.aliases
    assert method.citation.strip()
    assert method.hyphy_keyword == HYPHY_KEYWORDS[method_id]
    assert method.runnable == (method.hyphy_keyword is not None)


@pytest.mark.parametrize(
    ("spelling", "method_id"),
    [
        ("a-BSREL", "absrel"),
        ("absrel", "absrel"),
        ("aBSREL", "absrel"),
        ("Contrast FEL", "contrast-fel"),
        ("contrast-fel", "contrast-fel"),
        ("MULTI-HIT", "multi-hit"),
        ("multihit", "multi-hit"),
        ("fmm", "multi-hit"),
        ("Slatkin Maddison", "slatkin-maddison"),
        ("BUSTED", "busted"),
        ("fixed effects likelihood", "fel"),
        ("NRM", "nrm"),
    ],
)
def test_find_ignores_case_and_punctuation(spelling: str, method_id: str) -> None:
    method = load_catalog().find(spelling)
    assert method is not None and method.id == method_id


@pytest.mark.parametrize("unknown", ["", "   ", "PAML", "codeml", "fel2"])
def test_find_unknown_returns_none(unknown: str) -> None:
    assert load_catalog().find(unknown) is None


def test_key_options_and_defaults_come_from_the_method_models() -> None:
    methods = registry()

    def option(method_id: str, name: str) -> object:
        return methods[method_id].options({}).model_dump()[name]

    assert option("fel", "pvalue") == 0.1
    assert option("fel", "srv") == "Yes"
    assert option("fel", "ci") == "No"
    assert option("fubar", "posterior") == 0.9
    assert option("busted", "srv") == "Yes"
    assert option("absrel", "branches") == []
    assert option("fel", "genetic_code") == "Universal"


@pytest.mark.parametrize(
    ("method_id", "fragment"),
    [
        ("fel", "Mol Biol Evol 22(5):1208"),
        ("slac", "Mol Biol Evol 22(5):1208"),
        ("meme", "PLoS Genet 8(7):e1002764"),
        ("fubar", "Mol Biol Evol 30(5):1196"),
        ("busted", "Mol Biol Evol 32(5):1365"),
        ("absrel", "Mol Biol Evol 32(5):1342"),
        ("relax", "Mol Biol Evol 32(3):820"),
        ("contrast-fel", "Mol Biol Evol 38(3):1184"),
        ("gard", "Mol Biol Evol 23(10):1891"),
        ("bgm", "Bioinformatics 24(17):1949"),
        ("multi-hit", "PLoS ONE"),
        ("slatkin-maddison", "Genetics 123(3):603"),
    ],
)
def test_citations(method_id: str, fragment: str) -> None:
    method = load_catalog().find(method_id)
    assert method is not None and fragment in method.citation


def test_input_requirements() -> None:
    catalog = load_catalog()
    fade, relax, gard = catalog.find("fade"), catalog.find("relax"), catalog.find("gard")
    assert fade is not None and relax is not None and gard is not None
    assert "protein alignment" in fade.inputs and "rooted tree" in fade.inputs
    assert any("labelled branches" in i for i in relax.inputs)
    assert not any("tree" in i for i in gard.inputs)
