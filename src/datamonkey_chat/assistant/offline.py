"""The offline assistant: a deterministic model inside the normal Pydantic AI pipeline.

No language model small enough to ship answers scientists reliably, so the default is a
`FunctionModel` that recognises plain requests, calls the very same tools an LLM would
(so tool events, history and streaming behave identically) and formats what the tools
return. It never states a fact that did not come from a tool result, and it only starts
or cancels an analysis when the message asks for exactly that.

Each model request is answered by `decide()`: it reads the user's latest message and the
tool results gathered so far in this run, and returns either more tool calls or the text.
"""

from __future__ import annotations

import difflib
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

from datamonkey_chat.assistant.analysis_tools import extract_alignment
from datamonkey_chat.catalog import MethodInfo, load_catalog, normalize_name

__all__ = [
    "OFFLINE_DESCRIPTION",
    "Call",
    "Intent",
    "Observation",
    "Situation",
    "Step",
    "classify",
    "decide",
    "find_methods",
    "offline_model",
]

OFFLINE_DESCRIPTION = "offline assistant"
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
    '- "my datasets", "run FEL on my alignment", "is my job done?", '
    '"what did BUSTED find?", "cancel my job"\n'
    "- or paste a FASTA/NEXUS alignment to store it as a dataset."
)


# ---------------------------------------------------------------- intent recognition


@dataclass(frozen=True)
class Intent:
    kind: str
    methods: tuple[MethodInfo, ...] = ()
    selection: tuple[str, ...] = ()
    job_id: str | None = None


# Words the patterns below rely on; a misspelt word close to one of them is corrected
# before matching ("lsit metods" -> "list methods").
_VOCABULARY = (
    "list methods method available analyses analysis options parameters settings "
    "defaults citation citations reference references publication cite paper input inputs "
    "require requires required requirements episodic pervasive diversifying purifying "
    "positive negative selection recombination breakpoints coevolution coevolving "
    "directional relaxed relaxation intensified branches lineages sites results result "
    "finished complete completed status progress cancel datasets dataset alignments "
    "alignment uploads jobs running interpret understand explain recommend suggest "
    "which hello thanks compartment compartmentalization segregation migration "
    "epistasis list show cite jobs data help"
).split()

_SELECTION_TERMS: tuple[tuple[str, str], ...] = (
    (r"episodic", "episodic"),
    (r"pervasive|constant", "pervasive"),
    (r"gene[- ]?wide|whole gene|entire gene|alignment[- ]?wide", "gene-wide"),
    (r"\bbranch(es)?\b|lineages?", "branch-level"),
    (r"relax(ed|ation)|intensif", "relaxation"),
    (r"recombin|breakpoints?", "recombination"),
    (r"co-?evol|epista|correlated sites", "coevolution"),
    (r"directional", "directional"),
    (r"\bsites?\b|\bcodons?\b", "site-level"),
    (r"diversifying|positive|adaptive", "diversifying"),
    (r"purifying|negative", "purifying"),
    (r"between (clades|groups|sets)|differ\w* between|compare (clades|groups)", "differential"),
    (r"multi-?nucleotide|multiple[- ]hits?|double and triple", "multi-nucleotide substitutions"),
    (r"compartment|segregat|population structure|migration|gene flow", "compartmentalization"),
)

_RUN_VERB = re.compile(r"\b(run|rerun|start|launch|submit|execute|analy[sz]e|kick off)\b")
_QUESTION_START = re.compile(
    r"^(how|what|which|why|when|where|should|does|do|is|are|will|who|whats)\b"
)
_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|howdy|greetings|good (morning|afternoon|evening)|yo|hallo|hola)\b"
)
_THANKS = re.compile(r"\b(thanks|thank you|thx|cheers|great|perfect)\b")
_HELP = re.compile(
    r"\b(help|what can you do|what do you do|who are you|what are you|how does this work)\b"
)
_CANCEL = re.compile(r"\b(cancel|abort|kill|stop)\b")
_JOB_WORD = re.compile(r"\b(job|jobs|analysis|analyses|run|it|that|this)\b")
_INTERPRET = re.compile(
    r"\b(read|interpret|understand|make sense of)\b.*\b(results?|outputs?)\b"
    r"|\bhow (do|should|can) i (read|interpret)\b|\binterpret"
)
_RESULTS = re.compile(
    r"\bresults?\b|\bwhat did\b.*\bfind\b|\bfindings\b|\bwhat did\b.*\bfound\b"
    r"|\bsummar(y|ize|ise)\b.*\b(job|analysis|run)\b"
)
_STATUS = re.compile(
    r"\b(status|progress|done|finished|complete|completed|ready|still running)\b"
    r"|\bhow('s| is) (my|the) (job|analysis|run)\b"
)
_DATASETS = re.compile(r"\b(datasets?|alignments?|uploads?|files?|data)\b")
_MINE = re.compile(r"\b(my|list|show|which|what)\b")
_JOBS = re.compile(r"\b(my|list|show)\b.*\b(jobs|analyses|runs)\b")
_CITE = re.compile(
    r"\b(cite|citation|citations|reference|references|paper|publication|doi|source)\b"
)
_INPUTS = re.compile(
    r"\b(input|inputs|need|needs|require|requires|required|requirements|file formats?)\b"
    r"|what (data|files?) (does|do)\b"
)
_OPTIONS = re.compile(r"\b(options?|parameters?|settings?|defaults?|arguments?|flags?)\b")
_RUNTIME = re.compile(r"how long|run ?time|how fast|how slow|take to run|duration")
_LIST_METHODS = re.compile(
    r"\b(list|show|what|which|available|all|offer|have|supported)\b.*\b(methods|analyses|tests)\b"
    r"|^methods\??$|\bwhat can you run\b"
)
_RECOMMEND = re.compile(
    r"\b(which|what|best|recommend|suggest|should i use|method for|methods for|detect|find|"
    r"identify|test for|look for|looking for)\b"
)
_JOB_ID = re.compile(r"\bjob\s*(?:id\s*)?[#:]?\s*([a-z0-9_-]*\d[a-z0-9_-]*)\b", re.IGNORECASE)
_BACK_REFERENCE = re.compile(r"\b(it|that|this|same)\b")
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
    return tuple(label for pattern, label in _SELECTION_TERMS if re.search(pattern, text))


def _job_id(text: str) -> str | None:
    match = _JOB_ID.search(text)
    return match.group(1) if match else None


def _is_request(text: str) -> bool:
    """An imperative ("run FEL", "can you run ...") rather than a question about running."""
    return bool(_RUN_VERB.search(text)) and not _QUESTION_START.search(text)


def classify(message: str, earlier: Sequence[str] = ()) -> Intent:
    """What the user asks for. `earlier` (older user messages, oldest first) resolves
    "cite it" or "run it" to the method discussed last."""
    text = _clean(message)
    methods = tuple(find_methods(text))
    recalled = methods or _recall_method(earlier)
    job_id = _job_id(message)

    if extract_alignment(message) is not None:
        return Intent("save_alignment", methods if _is_request(text) else (), job_id=job_id)
    if _CANCEL.search(text) and _JOB_WORD.search(text):
        return Intent("cancel", job_id=job_id)
    if _INTERPRET.search(text) and recalled:
        return Intent("interpret", recalled)
    if _RUNTIME.search(text) and recalled:
        return Intent("runtime", recalled)
    if _is_request(text):
        # an earlier method only when the user points back to it ("run it")
        return Intent("run", methods[:1] or (recalled[:1] if _BACK_REFERENCE.search(text) else ()))
    if _RESULTS.search(text):
        return Intent("results", methods, job_id=job_id)
    if _STATUS.search(text) and _JOB_WORD.search(text):
        return Intent("status", job_id=job_id)
    if _JOBS.search(text):
        return Intent("jobs")
    if _DATASETS.search(text) and _MINE.search(text) and not methods:
        return Intent("datasets")
    if _CITE.search(text) and recalled:
        return Intent("cite", recalled)
    if _OPTIONS.search(text) and recalled:
        return Intent("options", recalled)
    if _INPUTS.search(text) and recalled:
        return Intent("inputs", recalled)
    selection = _selection_terms(text)
    if not methods and selection and _RECOMMEND.search(text):
        return Intent("recommend", selection=selection)
    if _LIST_METHODS.search(text) or (_CITE.search(text) and not recalled):
        return Intent("list_methods")
    if methods:
        return Intent("describe", methods)
    if _HELP.search(text):
        return Intent("help")
    if _GREETING.search(text):
        return Intent("greeting")
    if _THANKS.search(text):
        return Intent("thanks")
    return Intent("fallback")


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
    step = _HANDLERS[intent.kind](situation, intent)
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
    return _describe_each(situation, intent, _render_inputs)


def _handle_options(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_options)


def _handle_runtime(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_runtime)


def _handle_interpret(situation: Situation, intent: Intent) -> Step:
    return _describe_each(situation, intent, _render_interpretation)


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
    method = intent.methods[0]
    if not method.runnable:
        return Step(text=f"{method.name} cannot be run on this server. {method.note or ''}".strip())
    started = situation.results("start_analysis")
    if started:
        return Step(text=_started_text(method, started[0]))
    listed = situation.results("list_datasets")
    if not listed:
        return _call("list_datasets")
    if _error(listed[0]):
        return Step(text=_error(listed[0]) or "")
    dataset = _pick_dataset(_items(listed[0], "datasets"), situation.message)
    if dataset is None:
        return Step(text=f"You have no dataset to run {method.name} on yet. " + _UPLOAD_HINT)
    return _call("start_analysis", method=method.id, alignment_id=_item_id(dataset, "dataset"))


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


def _started_text(method: MethodInfo, result: Any) -> str:
    if _error(result):
        return f"I could not start {method.name}: {_error(result)}"
    job = result if isinstance(result, dict) else {}
    job_id = _item_id(job, "job")
    status = job.get("status", "queued")
    return (
        f"Started {method.name} (job {job_id}, status: {status}). "
        'Ask "is my job done?" to follow it, and "what did '
        f'{method.name} find?" when it has finished.'
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
    method = intent.methods[0]
    started = situation.results("start_analysis")
    if not started:
        return _call("start_analysis", method=method.id, alignment_id=_item_id(dataset, "dataset"))
    return Step(text=stored + " " + _started_text(method, started[0]))


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


def _pick_dataset(datasets: list[dict[str, Any]], message: str) -> dict[str, Any] | None:
    """The dataset named (or whose id appears) in the message, else the most recent."""
    text = message.lower()
    datasets = [d for d in datasets if d.get("kind") != "tree"]  # trees are not alignments
    for dataset in datasets:
        labels = {str(dataset.get("name") or ""), _item_id(dataset, "dataset")}
        labels |= {label.rsplit(".", 1)[0] for label in labels}
        if any(len(label) >= 3 and label.lower() in text for label in labels):
            return dataset
    return _latest(datasets)


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
    kind = dataset.get("type")
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


async def offline_reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    step = decide(situation_from_messages(messages, info))
    parts: list[ModelResponsePart]
    if step.calls:
        parts = [ToolCallPart(c.tool, c.args, tool_call_id=_new_call_id()) for c in step.calls]
    else:
        parts = [TextPart(step.text)]
    return ModelResponse(parts=parts)


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
    for chunk in re.findall(r"\S+\s*|\s+", step.text):
        yield chunk


def offline_model() -> FunctionModel:
    return FunctionModel(offline_reply, stream_function=offline_stream, model_name="offline")
