"""Every example phrasing of catalog/intents.json, through the real agent pipeline.

For each example: the rule it belongs to is the one that matches it; the start_analysis
calls the offline assistant makes are exactly the example's `start` (method, dataset, tree,
options), or none at all (a question never starts or cancels anything); the answer contains
the example's `reply_has`. Analyses go to the recording test double in offline_world.py,
which checks options with the methods' real options models.
"""

from __future__ import annotations

import pytest

from datamonkey_chat.analyses.methods import registry
from datamonkey_chat.assistant import build_assistant
from datamonkey_chat.assistant.base import AssistantDeps, StoredTurn
from datamonkey_chat.assistant.offline import classify, concepts_in
from datamonkey_chat.catalog.knowledge import Example, load_intents
from datamonkey_chat.settings import Settings
from tests.unit.offline_world import FakeAnalyses

EXAMPLES: list[tuple[str, Example]] = [
    (rule.id, example) for rule in load_intents().intents for example in rule.examples
]


def test_there_are_enough_examples_and_every_rule_has_some() -> None:
    assert len(EXAMPLES) >= 80
    assert all(rule.examples for rule in load_intents().intents)
    questions = [e for _, e in EXAMPLES if not e.start and e.cancel is None]
    with_options = [e for _, e in EXAMPLES if any(call.get("options") for call in e.start)]
    assert len(questions) >= 40 and len(with_options) >= 15


def missing_models(example: Example) -> list[str]:
    """Methods whose options the example names but whose module this checkout lacks."""
    return [
        call["method"]
        for call in example.start
        if call.get("options") and call["method"] not in registry()
    ]


@pytest.mark.parametrize(("intent", "example"), EXAMPLES, ids=[e.say[:50] for _, e in EXAMPLES])
async def test_example(intent: str, example: Example) -> None:
    absent = missing_models(example)
    if absent:
        pytest.skip(f"the options model of {', '.join(absent)} is not merged in this checkout")
    for call in example.start:  # the expected fields must be the model's own
        fields = (
            registry()[call["method"]].Options.model_fields if call["method"] in registry() else {}
        )
        assert set(call.get("options", {})) <= set(fields), (call, list(fields))

    assert classify(example.say, example.earlier).kind == intent

    fake = FakeAnalyses()
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="alice", conversation_id="c1", analyses=fake)
    history = [StoredTurn(text, "...") for text in example.earlier]
    reply = await assistant.reply(history, example.say, deps)

    started = [
        e.payload
        for e in reply.tool_events
        if e.kind == "tool_call" and e.tool_name == "start_analysis"
    ]
    assert started == example.start, reply.text
    assert [args[0] for args in fake.called("start_job")] == [c["method"] for c in example.start]
    expected_cancel = [(example.cancel,)] if example.cancel else []
    assert fake.called("cancel_job") == expected_cancel
    for text in example.reply_has:
        assert text in reply.text, f"{text!r} not in {reply.text!r}"
    assert {user for _, user, _ in fake.calls} <= {"alice"}


def test_questions_never_start_or_cancel() -> None:
    """Examples asking how/what/which/whether (or for an explanation) expect no action."""
    asked = [
        example
        for _, example in EXAMPLES
        if {"question", "about_action"} & concepts_in(example.say, example.earlier)
    ]
    assert len(asked) >= 30
    for example in asked:
        assert not example.start and example.cancel is None, example.say
