"""The offline assistant's data files: validated like the catalog, and generic.

Option words are applied to whatever fields a method's options model has, read at run time:
a method module that is not written yet gets its options from words with no new code (shown
here with a stand-in method registered only for the test).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import Field, ValidationError

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.analyses.methods.base import MethodOptions
from datamonkey_chat.analyses.methods.options import UPSTREAM_CODES, BranchList, GeneticCode
from datamonkey_chat.assistant import offline, option_words
from datamonkey_chat.assistant.option_words import apply_words, match_words, unread_words
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.catalog.knowledge import (
    Intents,
    OptionPhrase,
    load_glossary,
    load_intents,
    load_option_words,
)


def test_the_glossary_covers_what_biologists_ask() -> None:
    ids = {term.id for term in load_glossary().terms}
    assert {
        "dnds",
        "pervasive-episodic",
        "synonymous-rate-variation",
        "multiple-hits",
        "branch-site",
        "recombination",
        "hyphy",
        "genetic-codes",
    } <= ids


def test_the_genetic_codes_named_are_the_ones_offered() -> None:
    text = load_glossary().get("genetic-codes").text
    assert all(code in text for code in UPSTREAM_CODES)
    said = {
        v
        for phrase in load_option_words().phrases
        for alt in phrase.apply
        for k, v in alt.items()
        if k == "genetic_code"
    }
    assert said == set(UPSTREAM_CODES)  # every code has words, and only real codes


def test_every_selection_type_of_the_catalog_is_reachable_by_words() -> None:
    types = {t for method in load_catalog().methods for t in method.selection_types}
    reachable = {t for term in load_intents().selection_terms for t in term.types}
    assert types <= reachable


def test_every_intent_has_an_answer() -> None:
    """A rule either carries its fixed reply or names an intent the offline model handles."""
    for rule in load_intents().intents:
        assert rule.reply or rule.id in offline.HANDLED_INTENTS, rule.id


def intents_with(change: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(load_intents().model_dump_json())
    data.update(change)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"concepts": {"question": "(unclosed"}}, "bad regular expression"),
        (
            {"intents": [{"id": "x", "all": ["nonsense"], "examples": []}]},
            "unknown concepts",
        ),
        ({"selection_terms": [{"pattern": "x", "types": ["telepathy"]}]}, "no method has"),
        ({"intents": [{"id": "x", "all": ["method"], "examples": []}]}, "fallback"),
    ],
)
def test_a_broken_intents_file_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Intents.model_validate(intents_with(change))


def test_an_option_phrase_must_capture_what_it_applies() -> None:
    with pytest.raises(ValidationError, match="not captured"):
        OptionPhrase(says="x", pattern=r"p <number:value>", apply=[{"pvalue": "{other}"}])


def test_words_are_read_in_data_order_and_not_twice() -> None:
    matches, remaining = match_words("internal branches only, p-value 0.01")
    assert [(m.phrase.says, m.text) for m in matches] == [
        ("p-value", "p-value 0.01"),
        ("internal branches", "internal branches only"),
    ]
    assert remaining.strip(" ,") == ""


def test_unread_words_ignore_filler_and_known_names() -> None:
    _, remaining = match_words("please run FEL on hiv_env with p < 0.1 and 3 frobs")
    assert unread_words(remaining, ["fel", "hiv_env"]) == "3 frobs"


class StandInOptions(MethodOptions):
    """An options model like a method module not merged yet would have."""

    posterior: Annotated[float, Field(gt=0, lt=1)] = 0.9
    test_branches: BranchList
    reference_branches: BranchList
    rates: Annotated[int, Field(ge=1, le=10)] = 3
    genetic_code: GeneticCode = "Universal"


class StandIn:
    id = "stand-in"
    Options = StandInOptions


def test_any_method_gets_the_options_its_model_has(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(option_words, "registry", lambda: {**registry(), "stand-in": StandIn()})
    matches, _ = match_words(
        "posterior 0.95, TEST vs REFERENCE, 4 rate classes, p-value 0.05, flatworm code"
    )

    applied = apply_words(matches, "stand-in", "Stand-in")

    assert applied.options == {
        "posterior": 0.95,
        "test_branches": ["TEST"],
        "reference_branches": ["REFERENCE"],
        "rates": 4,
        "genetic_code": "Flatworm mtDNA",
    }
    assert applied.not_applied == ['"p-value 0.05" (p-value: Stand-in has no such option)']
    StandInOptions.model_validate(applied.options)  # what was read fits the model


def test_fel_gets_its_own_fields_and_is_told_what_does_not_fit() -> None:
    matches, _ = match_words("p < 0.05, 4 rate classes, test the TEST branches, no srv")

    applied = apply_words(matches, "fel", "FEL")

    assert applied.options == {"pvalue": 0.05, "branches": ["TEST"], "srv": "No"}
    assert applied.not_applied == ['"4 rate classes" (rate classes: FEL has no such option)']
    registry()["fel"].Options.model_validate(applied.options)


def test_a_method_without_a_module_is_said_to_have_no_options_model() -> None:
    matches, _ = match_words("posterior 0.99")
    applied = apply_words(matches, "no-such-method", "Nothing")
    assert applied.options == {}
    assert "no options model for Nothing" in applied.not_applied[0]
