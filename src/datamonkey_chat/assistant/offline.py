"""The offline assistant: a deterministic model inside the normal Pydantic AI pipeline.

No language model small enough to ship answers scientists reliably, so the default is a
`FunctionModel` that recognises plain requests, calls the very same tools an LLM would
(so tool events, history and streaming behave identically) and formats what the tools
return. It never states a fact that did not come from a tool result, and it only starts
or cancels an analysis when the message asks for exactly that.

Each model request is answered by `decide()`: it reads the user's latest message and the
tool results gathered so far in this run, and returns either more tool calls or the text.
What a message asks for is decided by data, not code: catalog/intents.json (concepts,
rules over them, first match wins, each with the example phrasings it is tested with);
concepts are explained from catalog/glossary.json and options said in words are read with
catalog/option_words.json (assistant/option_words.py).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.usage import RequestUsage

from datamonkey_chat.assistant.analysis_tools import extract_alignment
from datamonkey_chat.assistant.option_words import (
    AppliedOptions,
    apply_words,
    match_words,
    unread_words,
)
from datamonkey_chat.catalog import MethodInfo, load_catalog, normalize_name
from datamonkey_chat.catalog.knowledge import load_glossary, load_intents

__all__ = [
    "OFFLINE_DESCRIPTION",
    "Call",
    "Intent",
    "Observation",
    "Situation",
    "Step",
    "HANDLED_INTENTS",
    "classify",
    "concepts_in",
    "decide",
    "find_methods",
    "offline_model",
    "step_response",
    "text_chunks",
]

OFFLINE_DESCRIPTION = "offline assistant"
OFFLINE_MODEL_NAME = "offline"
MAX_TOOL_ROUNDS = 6  # a guard: every handler needs at most three

CONNECT_HINT = (
    "To use a language model instead, the server admin sets DATAMONKEY_CHAT_MODEL "
    "(for example `openai:gpt-4.1-mini`, `anthropic:claude-sonnet-4-5`, "
    "`google-gla:gemini-2.5-flash`, or a local Ollama/vLLM model with "
    "DATAMONKEY_CHAT_OPENAI_BASE_URL)."
)
CAPABILITIES = (
    "I am the offline assistant: I answer from Datamonkey's curated method catalog and "
    "run your analyses, but I do not understand free-form questions. Try:\n"
    '- "list methods", "what is MEME?", "which method finds episodic selection?"\n'
    '- "how do I cite FUBAR?", "what input does RELAX need?", "options for FEL"\n'
    '- "what is dN/dS?", "pervasive vs episodic selection", "which genetic codes exist?"\n'
    '- "my datasets", "run FEL on hiv.fasta with p-value 0.05, internal branches only", '
    '"is my job done?", "what did BUSTED find?", "cancel my job"\n'
    "- or paste a FASTA/NEXUS alignment to store it as a dataset."
)


# ---------------------------------------------------------------- intent recognition
# The concepts, the rules over them (first match wins) and their example phrasings live in
# catalog/intents.json; this section only computes which concepts a message has.


@dataclass(frozen=True)
class Intent:
    kind: str
    methods: tuple[MethodInfo, ...] = ()
    selection: tuple[str, ...] = ()
    job_id: str | None = None
    terms: tuple[str, ...] = ()  # glossary term ids
    reply: str | None = None  # a rule's fixed answer


# Words the concepts rely on; a misspelt word close to one of them is corrected before
# matching ("lsit metods" -> "list methods").
_VOCABULARY = (
    "list methods method available analyses analysis options parameters settings "
    "defaults citation citations reference references publication cite paper input inputs "
    "require requires required requirements episodic pervasive diversifying purifying "
    "positive negative selection recombination breakpoints coevolution coevolving "
    "directional relaxed relaxation intensified branches lineages sites results result "
    "finished complete completed status progress cancel datasets dataset alignments "
    "alignment uploads jobs running interpret understand explain recommend suggest "
    "which hello thanks compartment compartmentalization segregation migration "
    "epistasis list show cite jobs data help protein nucleotide synonymous analyse analyze"
).split()

# "job 5", "job id: X", "job #X"; an id may itself begin with "id" (ids are random letters).
_JOB_ID = re.compile(
    r"\bjob\s*(?:id(?=[\s#:])\s*)?[#:]?\s*([a-z0-9_-]*\d[a-z0-9_-]*)\b", re.IGNORECASE
)
_MAX_WORD = 24  # longer tokens are sequences or ids, not misspelt words


def _clean(text: str) -> str:
    text = text.lower().replace("’", "'")
    words = re.findall(r"[a-z0-9'+-]+|[^\sa-z0-9'+-]", text)
    corrected = [_correct(word) for word in words]
    return " ".join(corrected)


def _correct(word: str) -> str:
    if word in _VOCABULARY or not word.isalpha() or len(word) > _MAX_WORD:
        return word
    if len(word) == 4:  # short words: only a swapped pair of letters ("lsit")
        return next((v for v in _VOCABULARY if len(v) == 4 and _one_swap(word, v)), word)
    if len(word) < 5:
        return word
    close = difflib.get_close_matches(word, _VOCABULARY, n=1, cutoff=0.85)
    return close[0] if close else word


@functools.cache  # the catalog does not change while the server runs
def _alias_table() -> dict[str, MethodInfo]:
    table: dict[str, MethodInfo] = {}
    for method in load_catalog().methods:
        for label in (method.id, method.name, *method.aliases):
            table.setdefault(normalize_name(label), method)
    return table


def _fuzzy_method(token: str, table: dict[str, MethodInfo]) -> MethodInfo | None:
    """Tolerate typos ("fubr", "absrl", "meem") without matching everyday words."""
    if not 4 <= len(token) <= _MAX_WORD or not token.isalpha():
        return None
    long_aliases = [alias for alias in table if len(alias) >= 5]
    close = difflib.get_close_matches(token, long_aliases, n=1, cutoff=0.85)
    if close:
        return table[close[0]]
    for alias in (a for a in table if len(a) == 4 and len(token) == 4):
        if _one_swap(token, alias):  # "meem" -> "meme"
            return table[alias]
    return None


def _one_swap(word: str, target: str) -> bool:
    diffs = [i for i, (a, b) in enumerate(zip(word, target, strict=True)) if a != b]
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and word[diffs[0]] == target[diffs[1]]
        and word[diffs[1]] == target[diffs[0]]
    )


def find_methods(text: str) -> list[MethodInfo]:
    """Methods named in `text`, in order, longest alias first ("contrast fel" is one)."""
    table = _alias_table()
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    found: list[MethodInfo] = []
    i = 0
    while i < len(tokens):
        match, width = _match_at(tokens, i, table)
        if match is not None and match not in found:
            found.append(match)
        i += width
    return found


def _match_at(
    tokens: Sequence[str], i: int, table: dict[str, MethodInfo]
) -> tuple[MethodInfo | None, int]:
    for width in range(min(6, len(tokens) - i), 0, -1):
        key = "".join(tokens[i : i + width])
        if key in table:
            return table[key], width
    return _fuzzy_method(tokens[i], table), 1


def _selection_terms(text: str) -> tuple[str, ...]:
    """The catalog's selection types the text asks about, in the data file's order."""
    found: list[str] = []
    for term in load_intents().selection_terms:
        if re.search(term.pattern, text):
            found.extend(t for t in term.types if t not in found)
    return tuple(found)


def _job_id(text: str) -> str | None:
    match = _JOB_ID.search(text)
    return match.group(1) if match else None


def concepts_in(message: str, earlier: Sequence[str] = ()) -> set[str]:
    """The concepts (named in catalog/intents.json, or built in) present in `message`."""
    text = _clean(message)
    present = {
        name for name, pattern in load_intents().concepts.items() if re.search(pattern, text)
    }
    methods = find_methods(text)
    builtin = {
        "method": bool(methods),
        "recalled_method": bool(methods or _recall_method(earlier)),
        "pasted_alignment": extract_alignment(message) is not None,
        "glossary_term": bool(load_glossary().find(text)),
        "selection_term": bool(_selection_terms(text)),
        "job_id": _job_id(message) is not None,
    }
    return present | {name for name, found in builtin.items() if found}


def classify(message: str, earlier: Sequence[str] = ()) -> Intent:
    """What the user asks for: the first rule of catalog/intents.json that holds.
    `earlier` (older user messages, oldest first) resolves "cite it" or "run it"."""
    return _classify(message, tuple(earlier))


# Every model request of a run classifies the same message again; the catalog is fixed.
@functools.lru_cache(maxsize=256)
def _classify(message: str, earlier: tuple[str, ...]) -> Intent:
    text = _clean(message)
    present = concepts_in(message, earlier)
    rule = load_intents().first_match(present)
    methods = tuple(find_methods(text))
    recalled = methods or _recall_method(earlier)
    kind = rule.id
    if kind in ("run", "save_alignment"):
        if kind == "save_alignment" and "run_verb" not in present:
            methods = ()
        elif not methods and "back_reference" in present:  # "run it": the method discussed
            methods = recalled[:1]
    elif kind not in ("results",):
        methods = recalled
    return Intent(
        kind,
        methods,
        selection=_selection_terms(text),
        job_id=_job_id(message),
        terms=tuple(term.id for term in load_glossary().find(text)),
        reply=rule.reply,
    )


def _recall_method(earlier: Sequence[str]) -> tuple[MethodInfo, ...]:
    for message in reversed(earlier):
        methods = find_methods(_clean(message))
        if methods:
            return (methods[-1],)
    return ()


# ---------------------------------------------------------------- deciding the next step


@dataclass(frozen=True)
class Call:
    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    tool: str
    args: dict[str, Any]
    result: Any


@dataclass(frozen=True)
class Step:
    """Either tool calls to make next, or the final text."""

    calls: tuple[Call, ...] = ()
    text: str = ""


@dataclass(frozen=True)
class Situation:
    message: str
    earlier: tuple[str, ...] = ()
    observations: tuple[Observation, ...] = ()
    tools: frozenset[str] = frozenset()

    def results(self, tool: str) -> list[Any]:
        return [o.result for o in self.observations if o.tool == tool]


Handler = Callable[[Situation, Intent], Step]


def decide(situation: Situation) -> Step:
    if len(situation.observations) > MAX_TOOL_ROUNDS:
        return Step(text="I could not finish that request. " + CAPABILITIES)
    intent = classify(situation.message, situation.earlier)
    handler = _handle_reply if intent.reply else _HANDLERS[intent.kind]
    step = handler(situation, intent)
    missing = [c.tool for c in step.calls if c.tool not in situation.tools]
    if missing:
        return Step(text=f"That needs the {missing[0]} tool, which this server does not offer.")
    return step


def _call(tool: str, **args: Any) -> Step:
    return Step(calls=(Call(tool, args),))


def _error(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("error"), str):
        return result["error"]
    return None


# --- method questions


def _describe_each(
    situation: Situation, intent: Intent, render: Callable[[dict[str, Any]], str]
) -> Step:
    described = situation.results("describe_method")
    if not described:
        return Step(calls=tuple(Call("describe_method", {"name": m.id}) for m in intent.methods))
    sections = [_error(r) or render(r) for r in described]
    return Step(text="\n\n".join(sections))


def _render_method(info: dict[str, Any]) -> str:
    lines = [
        f"**{info['name']}** ({info['full_name']}): {info['summary']}",
        "",
        f"- Question it answers: {info['question']}",
        f"- Input: {', '.join(info['inputs'])}",
        f"- Typical run time: {info['run_time']}",
        f"- Reading the results: {info['results']}",
        f"- Cite: {info['citation']}",
    ]
    if info["runnable"]:
        lines.append(
            "\nTo run it, upload or paste an alignment and say "
            f'"run {info["name"]} on my alignment".'
        )
    else:
        lines.append(
            f"\n{info['name']} cannot be run on this server. {info.get('note') or ''}".rstrip()
        )
    return "\n".join(lines)


def _render_citation(info: dict[str, Any]) -> str:
    return f"To cite {info['name']}: {info['citation']}"


def _render_inputs(info: dict[str, Any]) -> str:
    text = f"{info['name']} needs: {', '.join(info['inputs'])}."
    if not info["runnable"]:
        text += f" ({info['name']} cannot be run on this server.)"
    return text


def _render_options(info: dict[str, Any]) -> str:
    if not info["options"]:
        return f"The catalog lists no options for {info['name']}."
    lines = [f"Key options for {info['name']}:"]
    for option in info["options"]:
        choices = option.get("choices")
        shown = f" (choices: {', '.join(map(str, choices))})" if choices else ""
        default = option["default"] if option.get("default") is not None else "none"
        about = f": {option['description']}" if option.get("description") else ""
        lines.append(f"- `{option['name']}` (default {default}){shown}{about}")
    return "\n".join(lines)


def _render_runtime(info: dict[str, Any]) -> str:
    return f"Typical run time for {info['name']}: {info['run_time']}"


def _render_interpretation(info: dict[str, Any]) -> str:
    return f"Reading {info['name']} results: {info['results']}"


def _handle_describe(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_method)


def _handle_cite(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_citation)


def _handle_inputs(situation: Situation, intent: Intent) -> Step:
    kind = _data_kind(situation.message)
    if kind is None:
        return _describe_each(situation, intent, _render_inputs)
    return _describe_each(situation, intent, lambda info: _render_fit(info, kind))


_DATA_KINDS = (
    (re.compile(r"\b(protein|proteins|amino[- ]acids?|peptides?)\b", re.I), "protein"),
    (re.compile(r"\bcodons?\b|\bcoding\b", re.I), "codon"),
    (re.compile(r"\b(nucleotides?|dna|rna|non-coding)\b", re.I), "nucleotide"),
)


def _data_kind(message: str) -> str | None:
    return next((kind for pattern, kind in _DATA_KINDS if pattern.search(message)), None)


def _render_fit(info: dict[str, Any], kind: str) -> str:
    """Whether `kind` of data fits the method, read from the catalog's input list."""
    alignment = next((i for i in info["inputs"] if "alignment" in i), ", ".join(info["inputs"]))
    accepted = {k for k in ("protein", "codon", "nucleotide") if k in alignment}
    needs = f"{info['name']} needs: {', '.join(info['inputs'])}."
    if kind in accepted:
        return f"Yes. {needs}"
    if kind == "nucleotide" and "codon" in accepted:
        return (
            f"Yes, if your nucleotide sequences are in-frame coding sequences (codons, "
            f"length a multiple of 3, no stop codons inside). {needs}"
        )
    return f"No: {info['name']} does not take {kind} data. {needs}"


def _handle_options(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_options)


def _handle_runtime(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_runtime)


def _handle_interpret(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_interpretation)


def _handle_glossary(situation: Situation, intent: Intent) -> Step:
    explained = situation.results("explain_term")
    if not explained:
        return Step(calls=tuple(Call("explain_term", {"term": t}) for t in intent.terms[:2]))
    sections = [_error(r) or f"**{r['title']}**: {r['text']}" for r in explained]
    return Step(text="\n\n".join(sections))


def _handle_recommend_general(situation: Situation, intent: Intent) -> Step:
    explained = situation.results("explain_term")
    listed = situation.results("list_methods")
    if not explained:
        return Step(calls=(Call("explain_term", {"term": "choosing"}), Call("list_methods")))
    lines = [_error(explained[0]) or explained[0]["text"], "", "Methods that run here:"]
    for method in listed[0] if listed else []:
        if method["runnable"]:
            lines.append(f"- **{method['name']}**: {method['summary']}")
    lines.append('\nTell me what you want to find (e.g. "which method finds episodic selection?").')
    return Step(text="\n".join(lines))


def _handle_reply(situation: Situation, intent: Intent) -> Step:
    return Step(text=intent.reply or CAPABILITIES)


def _handle_list_methods(situation: Situation, intent: Intent) -> Step:
    listed = situation.results("list_methods")
    if not listed:
        return _call("list_methods")
    lines = ["Datamonkey offers these methods:"]
    for method in listed[0]:
        flag = "" if method["runnable"] else " (not runnable on this server)"
        lines.append(f"- **{method['name']}**: {method['summary']}{flag}")
    lines.append('\nAsk "what is MEME?" or "which method finds episodic selection?" for more.')
    return Step(text="\n".join(lines))


def _handle_recommend(situation: Situation, intent: Intent) -> Step:
    listed = situation.results("list_methods")
    if not listed:
        return _call("list_methods")
    wanted = set(intent.selection)
    scored = [(len(wanted & set(m["selection_types"])), m) for m in listed[0]]
    best = max((score for score, _ in scored), default=0)
    if best == 0:
        return Step(text="No method in the catalog matches that. " + CAPABILITIES)
    picks = [m for score, m in scored if score == best]
    terms = ", ".join(sorted(wanted))
    lines = [f"Methods in the catalog for {terms}:"]
    for method in picks:
        kinds = ", ".join(method["selection_types"])
        lines.append(
            f"- **{method['name']}** ({kinds}): {method['summary']} "
            f"Input: {', '.join(method['inputs'])}."
        )
    lines.append('\nAsk "what is X?" for details, or "run X on my alignment" to start one.')
    return Step(text="\n".join(lines))


# --- analyses


def _handle_datasets(situation: Situation, intent: Intent) -> Step:
    listed = situation.results("list_datasets")
    if not listed:
        return _call("list_datasets")
    if _error(listed[0]):
        return Step(text=_error(listed[0]) or "")
    datasets = _items(listed[0], "datasets")
    if not datasets:
        return Step(text="You have no datasets yet. " + _UPLOAD_HINT)
    lines = ["Your datasets:"] + [f"- {_dataset_line(d)}" for d in datasets]
    return Step(text="\n".join(lines))


_UPLOAD_HINT = (
    "Upload an alignment (FASTA, NEXUS or PHYLIP) with POST /api/v1/datasets or the page's "
    "upload button, or paste a small FASTA/NEXUS alignment into this chat."
)


def _handle_jobs(situation: Situation, intent: Intent) -> Step:
    listed = situation.results("list_jobs")
    if not listed:
        return _call("list_jobs")
    if _error(listed[0]):
        return Step(text=_error(listed[0]) or "")
    jobs = _items(listed[0], "jobs")
    if not jobs:
        return Step(text="You have no analysis jobs yet.")
    return Step(text="\n".join(["Your jobs:"] + [f"- {_job_line(j)}" for j in jobs]))


def _handle_run(situation: Situation, intent: Intent) -> Step:
    if not intent.methods:
        return _handle_run_which(situation)
    blocked = [m for m in intent.methods if not m.runnable]
    if blocked:
        method = blocked[0]
        return Step(text=f"{method.name} cannot be run on this server. {method.note or ''}".strip())
    request = _RunRequest.read(situation.message, intent.methods)
    if situation.results("start_analysis"):
        return Step(text=_run_report(situation, request))
    listed = situation.results("list_datasets")
    if not listed:
        return _call("list_datasets")
    if _error(listed[0]):
        return Step(text=_error(listed[0]) or "")
    datasets = _items(listed[0], "datasets")
    # dataset names are looked for outside the option words ("test the TEST branches")
    dataset, question = _choose_alignment(datasets, request.remaining, intent.methods)
    if dataset is None:
        return Step(text=question)
    tree_id, question = _choose_tree(datasets, request)
    if question:
        return Step(text=question)
    return Step(calls=request.start_calls(_item_id(dataset, "dataset"), tree_id))


_FILE_NAME = re.compile(
    r"\b[\w-]+\.(?:fasta|fas|fa|fna|nex|nexus|nxs|phy|phylip|aln|txt|nwk|newick|tre)\b",
    re.IGNORECASE,
)
_LATEST = re.compile(r"\b(latest|last|newest|most recent|just uploaded|recent)\b", re.IGNORECASE)


def _choose_alignment(
    datasets: list[dict[str, Any]], message: str, methods: Sequence[MethodInfo]
) -> tuple[dict[str, Any] | None, str]:
    """The alignment named, the only one, or the latest when asked; else a question back."""
    names = " and ".join(m.name for m in methods)
    alignments = [d for d in datasets if d.get("kind") != "tree"]  # trees are not alignments
    if not alignments:
        return None, f"You have no dataset to run {names} on yet. " + _UPLOAD_HINT
    named = _named_dataset(alignments, message)
    if named is not None:
        return named, ""
    unknown = _FILE_NAME.search(message)
    if unknown:  # a file the user names but has not uploaded: never run another one
        listed = "\n".join(f"- {_dataset_line(d)}" for d in alignments)
        return None, (
            f"You have no dataset named {unknown.group(0)}, so I started nothing. "
            f"Your alignments:\n{listed}"
        )
    if len(alignments) == 1 or _LATEST.search(message):
        return _latest(alignments), ""
    listed = "\n".join(f"- {_dataset_line(d)}" for d in alignments)
    return None, (
        f"Which alignment should I run {names} on? You have:\n{listed}\n"
        f'Say for example "run {methods[0].name} on {alignments[0].get("name") or "<name>"}", '
        f'or "on my latest alignment".'
    )


def _choose_tree(datasets: list[dict[str, Any]], request: _RunRequest) -> tuple[str | None, str]:
    if request.tree is None:
        return None, ""
    wanted = request.tree.lower()
    for dataset in sorted(datasets, key=lambda d: d.get("kind") != "tree"):
        if wanted in _dataset_labels(dataset):
            return _item_id(dataset, "dataset"), ""
    trees = [str(d.get("name")) for d in datasets if d.get("kind") == "tree"]
    known = f" Your trees: {', '.join(trees)}." if trees else " You have uploaded no tree."
    return None, (
        f"I found no tree named {request.tree} among your datasets, so I started nothing.{known} "
        "Upload the tree first, or leave it out to use the alignment's own tree (or one built "
        "for the job)."
    )


@dataclass(frozen=True)
class _RunRequest:
    """The methods to start and what the message says about their options."""

    methods: tuple[MethodInfo, ...]
    applied: tuple[AppliedOptions, ...]
    remaining: str  # the message without the option words read
    known: tuple[str, ...]  # method names: not options

    @classmethod
    def read(cls, message: str, methods: Sequence[MethodInfo]) -> _RunRequest:
        prose = _prose(message)
        matches, remaining = match_words(prose)
        applied = tuple(apply_words(matches, m.id, m.name) for m in methods)
        known = [t for m in methods for t in _method_tokens(m)]
        known += [t for m in find_methods(remaining.lower()) for t in _method_tokens(m)]
        return cls(tuple(methods), applied, remaining, tuple(known))

    def unread(self, dataset_labels: Iterable[str]) -> str:
        """Words that are neither options, method or dataset names, nor filler."""
        return unread_words(self.remaining, [*self.known, *dataset_labels])

    @property
    def tree(self) -> str | None:
        return next((a.tree for a in self.applied if a.tree), None)

    def start_calls(self, alignment_id: str, tree_id: str | None) -> tuple[Call, ...]:
        calls = []
        for method, applied in zip(self.methods, self.applied, strict=True):
            args: dict[str, Any] = {"method": method.id, "alignment_id": alignment_id}
            if tree_id:
                args["tree_id"] = tree_id
            args["options"] = applied.options
            calls.append(Call("start_analysis", args))
        return tuple(calls)


def _prose(message: str) -> str:
    """The message without a pasted alignment (whose letters are not words)."""
    cut = re.search(r"```|^\s*>|^\s*#nexus", message, re.IGNORECASE | re.MULTILINE)
    return message[: cut.start()] if cut else message


def _method_tokens(method: MethodInfo) -> set[str]:
    labels = (method.id, method.name, *method.aliases)
    return {label.lower() for label in labels} | {
        part for label in labels for part in re.split(r"[^a-z0-9]+", label.lower()) if part
    }


def _run_report(situation: Situation, request: _RunRequest) -> str:
    """One paragraph per started method: job, dataset, options used and what was not."""
    starts = [o for o in situation.observations if o.tool == "start_analysis"]
    datasets: dict[str, dict[str, Any]] = {}
    for listed in situation.results("list_datasets"):
        datasets.update((_item_id(d, "dataset"), d) for d in _items(listed, "datasets"))
    for saved in situation.results("save_pasted_alignment"):
        if isinstance(saved, dict) and not _error(saved):
            datasets[_item_id(saved, "dataset")] = saved
    paragraphs = []
    for method, applied in zip(request.methods, request.applied, strict=True):
        started = next((o for o in starts if o.args.get("method") == method.id), None)
        if started is None:
            continue
        paragraphs.append(_started_text(method, started, applied, datasets))
    unread = request.unread(label for d in datasets.values() for label in _dataset_labels(d))
    if unread:
        paragraphs.append(
            f'I did not understand "{unread}" as an option, so nothing from it was '
            f'applied. Ask "options for {request.methods[0].name}" to see what it takes.'
        )
    return "\n\n".join(paragraphs)


def _started_text(
    method: MethodInfo,
    started: Observation,
    applied: AppliedOptions,
    datasets: dict[str, dict[str, Any]],
) -> str:
    not_applied = "".join(f"\nNot applied: {item}." for item in applied.not_applied)
    if _error(started.result):
        return f"I could not start {method.name}: {_error(started.result)}{not_applied}"
    job = started.result if isinstance(started.result, dict) else {}
    job_id = _item_id(job, "job")
    status = job.get("status", "queued")
    on = ""
    dataset = datasets.get(str(started.args.get("alignment_id")))
    if dataset is not None:
        on = f" on {dataset.get('name') or _item_id(dataset, 'dataset')}"
    tree = datasets.get(str(started.args.get("tree_id")))
    if tree is not None:
        on += f" with the tree {tree.get('name') or _item_id(tree, 'dataset')}"
    options = started.args.get("options") or {}
    used = (
        "options: " + "; ".join(f"{k} = {_shown(v)}" for k, v in options.items())
        if options
        else "default options"
    )
    return (
        f"Started {method.name} (job {job_id}, status: {status}){on}, {used}."
        f"{not_applied}\n"
        'Ask "is my job done?" to follow it, and "what did '
        f'{method.name} find?" when it has finished.'
    )


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _handle_run_which(situation: Situation) -> Step:
    listed = situation.results("list_methods")
    if not listed:
        return _call("list_methods")
    names = ", ".join(m["name"] for m in listed[0] if m["runnable"])
    return Step(
        text=f"Which method should I run? Available here: {names}. "
        'Say for example "run FEL on my alignment", or ask '
        '"which method finds episodic selection?".'
    )


def _handle_save_alignment(situation: Situation, intent: Intent) -> Step:
    saved = situation.results("save_pasted_alignment")
    if not saved:
        return _call("save_pasted_alignment")
    if _error(saved[0]):
        return Step(text=f"I could not store the alignment: {_error(saved[0])}")
    dataset = saved[0] if isinstance(saved[0], dict) else {}
    stored = f"I stored your alignment as dataset {_dataset_line(dataset)}."
    if not intent.methods:
        return Step(
            text=stored + ' Say "run FEL on my alignment" (or another method) to analyse it.'
        )
    runnable = [m for m in intent.methods if m.runnable]
    if not runnable:
        method = intent.methods[0]
        return Step(text=f"{stored} {method.name} cannot be run on this server.")
    request = _RunRequest.read(situation.message, runnable)
    if not situation.results("start_analysis"):
        if request.tree is not None:
            return Step(
                text=stored + " To use a tree with it, say "
                f'"run {runnable[0].name} on {dataset.get("name") or "it"} using my tree '
                f'{request.tree}"; I started nothing yet.'
            )
        return Step(calls=request.start_calls(_item_id(dataset, "dataset"), None))
    return Step(text=stored + "\n\n" + _run_report(situation, request))


def _handle_status(situation: Situation, intent: Intent) -> Step:
    status = situation.results("job_status")
    if not status:
        return _call("job_status", job_id=intent.job_id)
    if _error(status[0]):
        return Step(text=_error(status[0]) or "")
    return Step(text=_status_text(status[0]))


def _handle_results(situation: Situation, intent: Intent) -> Step:
    summaries = situation.results("job_results")
    if summaries:
        return Step(text=_error(summaries[0]) or _results_text(summaries[0]))
    if intent.job_id or not intent.methods:
        return _call("job_results", job_id=intent.job_id)
    listed = situation.results("list_jobs")
    if not listed:
        return _call("list_jobs")
    if _error(listed[0]):
        return Step(text=_error(listed[0]) or "")
    method = intent.methods[0]
    job = _latest(j for j in _items(listed[0], "jobs") if _same_method(j, method))
    if job is None:
        return Step(text=f"You have no {method.name} jobs yet.")
    return _call("job_results", job_id=_item_id(job, "job"))


def _handle_cancel(situation: Situation, intent: Intent) -> Step:
    cancelled = situation.results("cancel_job")
    if cancelled:
        return Step(text=_error(cancelled[0]) or f"Cancelled: {_job_line(cancelled[0])}")
    if intent.job_id:
        return _call("cancel_job", job_id=intent.job_id)
    status = situation.results("job_status")
    if not status:
        return _call("job_status", job_id=None)
    if _error(status[0]):
        return Step(text=_error(status[0]) or "")
    job = status[0]
    if job.get("status") not in ("queued", "running"):
        return Step(
            text=f"Your latest job ({_job_line(job)}) is not queued or running; nothing to cancel."
        )
    return _call("cancel_job", job_id=_item_id(job, "job"))


# --- conversation


def _handle_greeting(situation: Situation, intent: Intent) -> Step:
    return Step(text="Hello! " + CAPABILITIES)


def _handle_thanks(situation: Situation, intent: Intent) -> Step:
    return Step(text="You're welcome. Anything else? (I am the offline assistant.)")


def _handle_help(situation: Situation, intent: Intent) -> Step:
    return Step(text=CAPABILITIES + "\n\n" + CONNECT_HINT)


def _handle_fallback(situation: Situation, intent: Intent) -> Step:
    return Step(text="I did not recognise that request. " + CAPABILITIES + "\n\n" + CONNECT_HINT)


_HANDLERS: dict[str, Handler] = {
    "glossary": _handle_glossary,
    "recommend_general": _handle_recommend_general,
    "describe": _handle_describe,
    "cite": _handle_cite,
    "inputs": _handle_inputs,
    "options": _handle_options,
    "runtime": _handle_runtime,
    "interpret": _handle_interpret,
    "list_methods": _handle_list_methods,
    "recommend": _handle_recommend,
    "datasets": _handle_datasets,
    "jobs": _handle_jobs,
    "run": _handle_run,
    "save_alignment": _handle_save_alignment,
    "status": _handle_status,
    "results": _handle_results,
    "cancel": _handle_cancel,
    "greeting": _handle_greeting,
    "thanks": _handle_thanks,
    "help": _handle_help,
    "fallback": _handle_fallback,
}


HANDLED_INTENTS = frozenset(_HANDLERS)


# ---------------------------------------------------------------- formatting tool results
# The analyses service's records are dicts; these read the common fields defensively.


def _items(result: Any, key: str) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        result = result.get(key, [])
    return [item for item in result if isinstance(item, dict)] if isinstance(result, list) else []


def _item_id(item: dict[str, Any], kind: str) -> str:
    return str(item.get(f"{kind}_id") or item.get("id") or "?")


def _latest(items: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Newest by `created_at` / `created`; else the first (listings are newest first)."""
    listed = list(items)
    if not listed:
        return None
    for key in ("created_at", "created"):
        stamps = [item.get(key) for item in listed]
        if all(isinstance(v, str) for v in stamps) or all(
            isinstance(v, int | float) for v in stamps
        ):
            return max(listed, key=lambda item: item[key])
    return listed[0]


def _dataset_labels(dataset: dict[str, Any]) -> set[str]:
    """How a user may name a dataset: its name, its name without extension, its id."""
    labels = {str(dataset.get("name") or "").lower(), _item_id(dataset, "dataset").lower()}
    return {label for label in labels | {v.rsplit(".", 1)[0] for v in labels} if len(label) >= 3}


def _named_dataset(datasets: list[dict[str, Any]], message: str) -> dict[str, Any] | None:
    """The dataset whose name (or id) appears in the message; the longest name wins."""
    text = message.lower()
    named: list[tuple[int, dict[str, Any]]] = []
    for dataset in datasets:
        found = [len(label) for label in _dataset_labels(dataset) if label in text]
        if found:
            named.append((max(found), dataset))
    return max(named, key=lambda pair: pair[0])[1] if named else None


def _same_method(job: dict[str, Any], method: MethodInfo) -> bool:
    found = load_catalog().find(str(job.get("method", "")))
    return found is not None and found.id == method.id


def _dataset_line(dataset: dict[str, Any]) -> str:
    name = dataset.get("name") or "unnamed"
    details = [
        f"{dataset[key]} {label}"
        for key, label in (("sequences", "sequences"), ("codons", "codons"), ("sites", "sites"))
        if dataset.get(key) is not None
    ]
    kind = dataset.get("data_type") or dataset.get("kind")  # `type` is the uploader's word
    if kind:
        details.insert(0, str(kind))
    extra = f" ({', '.join(details)})" if details else ""
    return f"{name} [id {_item_id(dataset, 'dataset')}]{extra}"


def _job_line(job: dict[str, Any]) -> str:
    parts = [f"job {_item_id(job, 'job')}"]
    if job.get("method"):
        parts.append(str(job["method"]).upper())
    if job.get("status"):
        parts.append(str(job["status"]))
    return ", ".join(parts)


def _status_text(job: dict[str, Any]) -> str:
    text = f"Status of {_job_line(job)}."
    progress, stage = job.get("progress"), job.get("stage")
    if isinstance(progress, float) and 0 <= progress <= 1:
        progress = f"{progress:.0%}"
    details = [str(d) for d in (progress, stage) if d not in (None, "", 0)]
    if job.get("status") in ("queued", "running") and details:
        text += f" Progress: {', '.join(details)}."
    if job.get("status") == "error" and job.get("error_message"):
        text += f" Error: {job['error_message']}"
    if job.get("status") == "completed":
        text += ' Ask "what did it find?" for the results.'
    return text


def _results_text(summary: dict[str, Any]) -> str:
    if summary.get("status") not in (None, "completed"):
        return f"{_job_line(summary)}: not finished yet, so there are no results."
    text = summary.get("summary_text")
    head = f"Results of {_job_line(summary)}:"
    if isinstance(text, str) and text:
        return f"{head}\n\n{text}"
    facts = {k: v for k, v in summary.items() if k not in ("job_id", "method", "status")}
    return head + "\n" + "\n".join(f"- {k}: {json.dumps(v, default=str)}" for k, v in facts.items())


# ---------------------------------------------------------------- the FunctionModel


def situation_from_messages(messages: Sequence[ModelMessage], info: AgentInfo) -> Situation:
    """The latest user message, older user messages, and this run's tool results."""
    prompts: list[tuple[int, str]] = []
    for index, message in enumerate(messages):
        if isinstance(message, ModelRequest):
            for request_part in message.parts:
                if isinstance(request_part, UserPromptPart) and isinstance(
                    request_part.content, str
                ):
                    prompts.append((index, request_part.content))
    if not prompts:
        return Situation(message="", tools=_tool_names(info))
    start, current = prompts[-1]
    calls: dict[str, ToolCallPart] = {}
    observations: list[Observation] = []
    for message in messages[start:]:
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                calls[part.tool_call_id] = part
            elif isinstance(part, ToolReturnPart):
                call = calls.get(part.tool_call_id)
                args = call.args_as_dict() if call else {}
                observations.append(Observation(part.tool_name, args, part.content))
    return Situation(
        message=current,
        earlier=tuple(text for _, text in prompts[:-1]),
        observations=tuple(observations),
        tools=_tool_names(info),
    )


def _tool_names(info: AgentInfo) -> frozenset[str]:
    return frozenset(tool.name for tool in info.function_tools)


def _new_call_id() -> str:
    return f"offline-{uuid.uuid4().hex[:12]}"


def step_response(step: Step) -> ModelResponse:
    """The model response that takes `step`: its tool calls, or its text."""
    parts: list[ModelResponsePart]
    if step.calls:
        parts = [ToolCallPart(c.tool, c.args, tool_call_id=_new_call_id()) for c in step.calls]
    else:
        parts = [TextPart(step.text)]
    # Nothing is billed offline. Without a usage, FunctionModel estimates one by re-reading
    # (and serializing) the whole history on every request: more work than the reply.
    return ModelResponse(
        parts=parts,
        usage=RequestUsage(output_tokens=len(step.text) // 4 + 1),
        model_name=OFFLINE_MODEL_NAME,
    )


async def offline_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    return step_response(decide(situation_from_messages(messages, info)))


async def offline_stream(
    messages: list[ModelMessage], info: AgentInfo
) -> AsyncIterator[str | DeltaToolCalls]:
    step = decide(situation_from_messages(messages, info))
    if step.calls:
        yield {
            index: DeltaToolCall(c.tool, json.dumps(c.args), tool_call_id=_new_call_id())
            for index, c in enumerate(step.calls)
        }
        return
    for chunk in text_chunks(step.text):
        yield chunk


def text_chunks(text: str) -> list[str]:
    """The text as streamed: a word at a time, each with the space after it."""
    return re.findall(r"\S+\s*|\s+", text)


def offline_model() -> FunctionModel:
    return FunctionModel(
        offline_reply, stream_function=offline_stream, model_name=OFFLINE_MODEL_NAME
    )
