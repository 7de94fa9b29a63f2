"""The offline assistant, phrasing by phrasing: the intent it recognises, the tools it
calls (through the real agent pipeline) and that the facts in its answer are the
catalog's. Analyses go to a recording fake of the analyses service."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from datamonkey_chat.assistant import build_assistant
from datamonkey_chat.assistant.base import AssistantDeps, StoredTurn
from datamonkey_chat.assistant.offline import classify, find_methods
from datamonkey_chat.catalog import load_catalog
from datamonkey_chat.settings import Settings
from tests.unit.offline_world import FakeAnalyses


def fact(method_id: str, attribute: str) -> str:
    method = load_catalog().find(method_id)
    assert method is not None
    value = getattr(method, attribute)
    return ", ".join(value) if isinstance(value, list) else str(value)


FASTA = ">seq1\nATGAAACCCGGG\n>seq2\nATGAAACCTGGG\n>seq3\nATGAAGCCCGGG\n"
HELP_FACT = "DATAMONKEY_CHAT_MODEL"


@dataclass(frozen=True)
class Case:
    phrase: str
    intent: str
    tools: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()
    service_calls: dict[str, tuple[Any, ...]] = field(default_factory=dict)


def describe(phrase: str, method_id: str, *more: str) -> Case:
    return Case(phrase, "describe", ("describe_method",), (fact(method_id, "summary"), *more))


CASES: list[Case] = [
    # what is X, for every method
    describe("What is FEL?", "fel", fact("fel", "citation")),
    describe("tell me about slac", "slac"),
    describe("What's MEME", "meme", fact("meme", "inputs")),
    describe("explain FUBAR to me", "fubar"),
    describe("what does BUSTED do?", "busted"),
    describe("describe a-BSREL", "absrel"),
    describe("What is RELAX?", "relax"),
    describe("tell me about Contrast FEL", "contrast-fel"),
    describe("what is GARD", "gard"),
    describe("what is BGM?", "bgm"),
    describe("what's MULTI-HIT", "multi-hit"),
    describe("what is FADE", "fade", fact("fade", "inputs")),
    describe("tell me about the Slatkin-Maddison test", "slatkin-maddison"),
    describe("what is NRM?", "nrm", "cannot be run on this server"),
    describe("how do I run FEL?", "fel", "run FEL on my alignment"),
    describe("hello, what is MEME?", "meme"),
    # typos
    describe("what is fubr?", "fubar"),
    describe("tell me about absrl", "absrel"),
    describe("wat is meem", "meme"),
    describe("explain bustd", "busted"),
    Case("lsit metods", "list_methods", ("list_methods",), ("FEL", "Slatkin-Maddison")),
    # citations, inputs, options, run time, results
    Case("how do I cite MEME?", "cite", ("describe_method",), (fact("meme", "citation"),)),
    Case("citation for aBSREL please", "cite", ("describe_method",), (fact("absrel", "citation"),)),
    Case("what paper should I reference for GARD", "cite", ("describe_method",), ("1891-1901",)),
    Case("what input does RELAX need?", "inputs", ("describe_method",), (fact("relax", "inputs"),)),
    Case("what does FADE require?", "inputs", ("describe_method",), ("rooted tree",)),
    Case("what are the options for FEL?", "options", ("describe_method",),
         ("`pvalue` (default 0.1)",)),
    Case("FUBAR parameters", "options", ("describe_method",), ("`grid_points` (default 20)",)),
    Case("FEL parameters", "options", ("describe_method",), ("`srv` (default Yes)",)),
    Case("how long does MEME take to run?", "runtime", ("describe_method",),
         (fact("meme", "run_time"),)),
    Case("how do I interpret BUSTED results?", "interpret", ("describe_method",),
         (fact("busted", "results"),)),
    # choosing a method
    Case("which method finds episodic selection?", "recommend", ("list_methods",),
         ("MEME", "BUSTED", "aBSREL")),
    Case("what method should I use to detect recombination?", "recommend", ("list_methods",),
         ("GARD", fact("gard", "summary"))),
    Case("which test for co-evolving sites?", "recommend", ("list_methods",), ("BGM",)),
    Case("how can I find sites under pervasive positive selection?", "recommend",
         ("list_methods",), ("FEL", "FUBAR", "SLAC")),
    Case("list methods", "list_methods", ("list_methods",), (fact("gard", "summary"),)),
    Case("What methods are available?", "list_methods", ("list_methods",),
         ("not runnable on this server",)),
    # conversation
    Case("hi", "greeting", (), ("offline assistant",)),
    Case("Hello there!", "greeting", (), ("offline assistant",)),
    Case("good morning", "greeting", (), ("offline assistant",)),
    Case("thanks!", "thanks", (), ("offline assistant",)),
    Case("what can you do?", "help", (), (HELP_FACT,)),
    Case("what's the weather in Paris?", "fallback", (), (HELP_FACT, "offline assistant")),
    Case("tell me a joke", "fallback", (), (HELP_FACT,)),
    Case("write me a poem about cats", "fallback", (), (HELP_FACT,)),
    # analyses
    Case("run FEL on my latest alignment", "run", ("list_datasets", "start_analysis"),
         ("job42", "queued"),
         {"start_job": ("fel", "ds2", None, {})}),
    Case("please run MEME on hiv_env", "run", ("list_datasets", "start_analysis"), ("job42",),
         {"start_job": ("meme", "ds1", None, {})}),
    Case("can you run aBSREL on my newest data?", "run", ("list_datasets", "start_analysis"),
         ("aBSREL",),
         {"start_job": ("absrel", "ds2", None, {})}),
    Case("run NRM on my alignment", "run", (), ("cannot be run on this server",)),
    Case("run an analysis on my data", "run", ("list_methods",), ("Which method",)),
    Case("is my job done?", "status", ("job_status",), ("job8", "running", "site 17/181")),
    Case("what's the status of job job7", "status", ("job_status",), ("job7", "completed"),
         {"get_job": ("job7",)}),
    Case("what did BUSTED find?", "results", ("list_jobs", "job_results"), ("p = 0.003",),
         {"job_summary": ("job7",)}),
    Case("show me the results", "results", ("job_results",), ("job8",)),
    Case("my datasets", "datasets", ("list_datasets",),
         ("hiv_env.fasta", "flu_ha.nex", "ds1", "nucleotide, 20 sequences")),
    Case("which alignments have I uploaded?", "datasets", ("list_datasets",), ("flu_ha.nex",)),
    Case("show my jobs", "jobs", ("list_jobs",), ("job7", "job8")),
    Case("cancel my job", "cancel", ("job_status", "cancel_job"), ("Cancelled", "job8"),
         {"cancel_job": ("job8",)}),
    Case(f"{FASTA}", "save_alignment", ("save_pasted_alignment",), ("ds9",),
         {"save_alignment_text": (FASTA, None)}),
    Case(f"run FUBAR on this:\n{FASTA}", "save_alignment",
         ("save_pasted_alignment", "start_analysis"),
         ("ds9", "job42"),
         {"save_alignment_text": (FASTA, None), "start_job": ("fubar", "ds9", None, {})}),
]  # fmt: skip

ACTIONS = ("start_job", "cancel_job", "save_alignment_text")


def test_there_are_enough_phrasings() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.phrase[:40] for c in CASES])
async def test_phrasing(case: Case) -> None:
    assert classify(case.phrase).kind == case.intent

    fake = FakeAnalyses()
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="alice", conversation_id="c1", analyses=fake)
    reply = await assistant.reply([], case.phrase, deps)

    calls = tuple(e.tool_name for e in reply.tool_events if e.kind == "tool_call")
    assert calls == case.tools
    for expected in case.facts:
        assert expected in reply.text, f"{expected!r} not in {reply.text!r}"
    for name, args in case.service_calls.items():
        assert fake.called(name) == [args]
    # actions only when asked for, and always as the user in deps
    for action in ACTIONS:
        if action not in case.service_calls:
            assert fake.called(action) == []
    assert {user for _, user, _ in fake.calls} <= {"alice"}


async def test_follow_up_resolves_the_method_from_history() -> None:
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="alice", conversation_id="c1")
    first = await assistant.reply([], "what is MEME?", deps)
    history = [StoredTurn("what is MEME?", first.text, first.model_messages)]

    reply = await assistant.reply(history, "how do I cite it?", deps)

    assert reply.text == f"To cite MEME: {fact('meme', 'citation')}"


async def test_run_it_uses_the_method_discussed_before() -> None:
    fake = FakeAnalyses()
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="bob", conversation_id="c1", analyses=fake)
    history = [StoredTurn("tell me about FUBAR", "FUBAR is ...")]

    await assistant.reply(history, "ok, run it on flu_ha", deps)

    assert fake.called("start_job") == [("fubar", "ds2", None, {})]
    assert fake.calls[-1][1] == "bob"


async def test_without_an_analyses_service_it_says_so() -> None:
    assistant = build_assistant(Settings(model=None))
    reply = await assistant.reply([], "run FEL on my alignment", AssistantDeps("u", "c"))
    assert "not available on this server" in reply.text


async def test_no_datasets_explains_how_to_upload() -> None:
    fake = FakeAnalyses()
    fake.datasets = []
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=fake)
    reply = await assistant.reply([], "run FEL on my alignment", deps)
    assert "POST /api/v1/datasets" in reply.text
    assert fake.called("start_job") == []


async def test_service_errors_are_reported_readably() -> None:
    fake = FakeAnalyses()
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=fake)
    reply = await assistant.reply([], "cancel job job99", deps)
    assert reply.text == "No job job99."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I feel fine", []),
        ("the relay is slack", []),
        ("compare FEL and MEME", ["fel", "meme"]),
        ("contrast-fel vs fel", ["contrast-fel", "fel"]),
        ("A-BSREL", ["absrel"]),
        ("fmm", ["multi-hit"]),
    ],
)
def test_method_names_are_found_without_false_matches(text: str, expected: list[str]) -> None:
    assert [m.id for m in find_methods(text)] == expected


async def test_records_shaped_like_the_analyses_service() -> None:
    """Ids under `id`, creation times in ms, trees listed beside alignments, progress as a
    fraction: the offline assistant asks which of two alignments, picks the newest when told
    "latest", and reports progress."""
    fake = FakeAnalyses()
    fake.datasets = [
        {"id": "t1", "name": "tree.nwk", "kind": "tree", "created": 3000},
        {"id": "a2", "name": "new.fasta", "kind": "alignment", "created": 2000},
        {"id": "a1", "name": "old.fasta", "kind": "alignment", "created": 1000},
    ]
    fake.jobs = [{"job_id": "j1", "method": "fel", "status": "running", "progress": 0.42,
                  "stage": "Fitting the full model", "created": 5000}]  # fmt: skip
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=fake)

    asked = await assistant.reply([], "run SLAC on my alignment", deps)
    assert "Which alignment" in asked.text and fake.called("start_job") == []
    await assistant.reply([], "run SLAC on my latest alignment", deps)
    status = await assistant.reply([], "is my job done?", deps)

    assert fake.called("start_job") == [("slac", "a2", None, {})]
    assert "42%" in status.text and "Fitting the full model" in status.text


async def test_a_dataset_named_but_not_uploaded_is_not_replaced_by_another() -> None:
    fake = FakeAnalyses()
    fake.datasets = fake.datasets[:1]  # one alignment: "my alignment" would be clear
    assistant = build_assistant(Settings(model=None))
    deps = AssistantDeps(user_id="u", conversation_id="c", analyses=fake)

    reply = await assistant.reply([], "run FEL on oak.fasta", deps)
    assert "no dataset named oak.fasta" in reply.text and fake.called("start_job") == []

    await assistant.reply([], "run FEL on my alignment", deps)
    assert fake.called("start_job") == [("fel", "ds1", None, {})]
