"""``selfheal ask``: a question about runs in plain words -> a LangSmith filter -> a summary.

Translation is deterministic first: phrases of time ("today", "this week",
"last 3 days", "since Monday"), outcome ("failed", "succeeded", "errored",
"interrupted"), task type (matched against the agent's own task types, see
:mod:`selfheal.interact.vocabulary`), tool ("that called get_metrics") and
feedback ("with negative feedback", "corrected") become filter clauses. Only
words left over that are not filler ("show me all ... runs") go to the chat
model, which must answer with one more clause in the same language; every
clause, the model's included, is parsed by :func:`selfheal.tracing.filters.parse_filter`
before anything runs. A model answer that does not parse, or says the words
are not about runs, makes the question :class:`UntranslatableQuestion` (exit 2):
a guessed filter is never run silently.

The filter is LangSmith's: it runs unchanged on the local store
(``query_runs``) and on LangSmith (``list_runs(filter=...)``). "That called X"
is a condition on another run of the trace (LangSmith's ``tree_filter``): it
is answered by listing the tool runs named X and keeping the roots of their
traces, the same way on both sources. "Corrected" keeps runs whose feedback
carries a correction (feedback is not a run field the filter language reaches).

The summary reuses :func:`selfheal.tracing.analysis.analyze` over exactly the
matched root runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from selfheal.errors import SelfhealError
from selfheal.interact.vocabulary import Vocabulary, agent_vocabulary, stem, words
from selfheal.tracing.analysis import Analysis, analyze
from selfheal.tracing.filters import FilterError, parse_filter, to_text

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.tracing.schema import RunRecord

__all__ = [
    "AskResult",
    "ExampleRun",
    "Translation",
    "UntranslatableQuestion",
    "ask",
    "parse_question",
    "translate",
]

#: Example runs listed under the summary.
EXAMPLES = 5
#: A user score below this is "negative feedback" (scores are 0..1 by convention: 1 good, 0 bad).
NEGATIVE_BELOW = 0.5
USER_SCORE_KEY = "user_score"


class UntranslatableQuestion(SelfhealError):
    """The question could not be turned into a filter; nothing was run (exit 2)."""

    exit_code = 2


# -- results ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Translation(_Model):
    """How a question became a query. ``filter`` None: every root run."""

    question: str
    filter: str | None = None
    #: Another run of the trace must match this (LangSmith's ``tree_filter``): tool calls.
    tree_filter: str | None = None
    tools: list[str] = Field(default_factory=list)
    #: Keep only runs whose feedback carries a correction.
    corrected: bool = False
    #: phrase -> what it became, in question order.
    recognized: list[tuple[str, str]] = Field(default_factory=list)
    #: Words the rules did not cover (sent to the model).
    unmatched: str = ""
    model_clause: str | None = None

    @property
    def used_model(self) -> bool:
        return self.model_clause is not None


class ExampleRun(_Model):
    id: str
    start_time: datetime
    task_type: str | None
    outcome: str
    error: str | None = None
    task: str | None = None


class AskResult(_Model):
    translation: Translation
    project: str
    source: str
    matched: int
    analysis: Analysis
    examples: list[ExampleRun] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


# -- deterministic phrases ---------------------------------------------------------------

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "fourteen": 14, "thirty": 30}
_UNITS = {"minute": "minutes", "hour": "hours", "day": "days", "week": "weeks", "month": "days"}
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_NUM = r"(\d+|" + "|".join(_NUMBERS) + r")"

#: Words that select nothing: filler, verbs of asking, names for "runs".
_FILLER = frozenset("""
a about all an and any are as at be been being between by can could did do does done during each every
find for from get give had has have how i in into is it its last list many me more most my of on or our
over past please recent recently runs run see show since so some tell than that the their them there these
they this those time times to trace traces was we were what when where which while who why will with
within would you your task tasks job jobs attempt attempts execution executions request requests question
questions optimization optimizations optimisation optimisations operation operations ones one agent agents
called calls calling call used uses using use invoked invoking ran tool tools happened happen summary
summarize summarise overview
""".split())


@dataclass
class _Scan:
    text: str  # lower-cased question; consumed spans become spaces
    clauses: list[str] = field(default_factory=list)
    recognized: list[tuple[int, str, str]] = field(default_factory=list)  # (position, phrase, meaning)
    tools: list[str] = field(default_factory=list)
    corrected: bool = False

    def take(self, pattern: str) -> list[re.Match[str]]:
        found = list(re.finditer(pattern, self.text))
        for m in found:
            self.text = self.text[: m.start()] + " " * (m.end() - m.start()) + self.text[m.end():]
        return found

    def note(self, m: re.Match[str], meaning: str) -> None:
        self.recognized.append((m.start(), m.group(0).strip(), meaning))


def _q(value: str) -> str:
    return json.dumps(value)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta_eq(key: str, value: Any) -> str:
    """``metadata[key] == value`` as LangSmith writes it (a key/value pair; values compared as JSON text)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"and(eq(metadata_key, {_q(key)}), eq(metadata_value, {_q(text)}))"


def _count(word: str | None) -> int:
    if not word:
        return 1
    return int(word) if word.isdigit() else _NUMBERS[word]


def _time(scan: _Scan, now: datetime) -> None:
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = midnight - timedelta(days=midnight.weekday())
    rules: list[tuple[str, Any]] = [
        (r"\bsince yesterday\b", lambda m: (midnight - timedelta(days=1), None)),
        (r"\b(?:since|from) (?:last )?(" + "|".join(_WEEKDAYS) + r")\b",
         lambda m: (midnight - timedelta(days=(midnight.weekday() - _WEEKDAYS.index(m.group(1))) % 7), None)),
        (r"\b(?:since|from) (\d{4}-\d{2}-\d{2})\b",
         lambda m: (datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC), None)),
        (r"\btoday\b", lambda m: (midnight, None)),
        (r"\byesterday\b", lambda m: (midnight - timedelta(days=1), midnight)),
        (r"\b(?:this|the current) week\b", lambda m: (monday, None)),
        (r"\blast week\b", lambda m: (monday - timedelta(days=7), monday)),
        (r"\b(?:this|the current) month\b", lambda m: (midnight.replace(day=1), None)),
        (r"\b(?:in |over |during |within )?(?:the )?(?:last|past) " + _NUM + r"? ?(minute|hour|day|week|month)s?\b",
         lambda m: (now - timedelta(**{_UNITS[m.group(2)]: _count(m.group(1)) * (30 if m.group(2) == "month" else 1)}),
                    None)),
    ]
    for pattern, window in rules:
        for m in scan.take(pattern):
            start, end = window(m)
            parts = [f"gte(start_time, {_q(_iso(start))})"]
            meaning = f"started at or after {_iso(start)}"
            if end is not None:
                parts.append(f"lt(start_time, {_q(_iso(end))})")
                meaning += f" and before {_iso(end)}"
            scan.clauses.extend(parts)
            scan.note(m, meaning)


_STATUS: list[tuple[str, str, str]] = [
    (r"\b(?:did not|didn't|did n't) (?:succeed|work)\b|\b(?:failed|failing|failures?|unsuccessful|broken)\b",
     _meta_eq("success", False), "the task failed (metadata success = false)"),
    (r"\b(?:succeeded|successful|successes|succeeding|passed|passing|worked|solved)\b",
     _meta_eq("success", True), "the task succeeded (metadata success = true)"),
    (r"\b(?:errored|erroring|errors?|crashed|crashes|crash|exceptions?|raised)\b",
     'eq(status, "error")', "the run raised an error (status = error)"),
    (r"\b(?:interrupted|unfinished|pending|incomplete|still running|hung|killed|cancell?ed)\b",
     'eq(status, "pending")', "the run never finished (status = pending)"),
]

_FEEDBACK: list[tuple[str, str | None, str]] = [
    (r"\b(?:with |had |got |getting |received )?(?:negative|bad|poor|low|thumbs[- ]down|unhappy) "
     r"(?:user )?(?:feedback|scores?|ratings?|reviews?)\b",
     f"and(eq(feedback_key, {_q(USER_SCORE_KEY)}), lt(feedback_score, {NEGATIVE_BELOW}))",
     f"a user scored it below {NEGATIVE_BELOW}"),
    (r"\b(?:with |had |got |getting |received )?(?:positive|good|high|thumbs[- ]up|happy) "
     r"(?:user )?(?:feedback|scores?|ratings?|reviews?)\b",
     f"and(eq(feedback_key, {_q(USER_SCORE_KEY)}), gte(feedback_score, {NEGATIVE_BELOW}))",
     f"a user scored it {NEGATIVE_BELOW} or more"),
    (r"\b(?:that (?:were|was|got) |which (?:were|was|got) |users? )?(?:corrected|with (?:a |any )?corrections?|"
     r"corrections?)\b", None, "a user's feedback carries a correction"),
    (r"\b(?:with|had|got|received) (?:any |some |user )?(?:feedback|scores?|ratings?)\b",
     f"eq(feedback_key, {_q(USER_SCORE_KEY)})", "a user gave feedback"),
]


def _status(scan: _Scan) -> None:
    for pattern, clause, meaning in _STATUS:
        found = scan.take(pattern)
        if found:
            scan.clauses.append(clause)
            scan.note(found[0], meaning)


def _feedback(scan: _Scan) -> None:
    for pattern, clause, meaning in _FEEDBACK:
        found = scan.take(pattern)
        if not found:
            continue
        if clause is None:
            scan.corrected = True
        else:
            scan.clauses.append(clause)
        scan.note(found[0], meaning)


def _tools(scan: _Scan, vocab: Vocabulary) -> None:
    for name in sorted(vocab.tools, key=len, reverse=True):
        spelled = r"[ _-]?".join(re.escape(w) for w in name.lower().split("_"))
        found = scan.take(r"(?<![a-z0-9_])" + spelled + r"(?![a-z0-9_])")
        if found:
            scan.tools.append(name)
            scan.note(found[0], f"the trace has a call of the tool {name}")


def _task_types(scan: _Scan, vocab: Vocabulary) -> None:
    matched: list[str] = []
    first: re.Match[str] | None = None
    for tt in vocab.task_types:
        literal = scan.take(r"(?<![a-z0-9_])" + re.escape(tt.lower()) + r"(?![a-z0-9_])")
        if literal:
            matched.append(tt)
            first = first or literal[0]
    own = {tt: {stem(w) for w in words(tt.replace("_", " ")) if w not in vocab.agent_words} for tt in vocab.task_types}
    hits: dict[str, list[re.Match[str]]] = {}
    for m in re.finditer(r"[a-z0-9]+", scan.text):
        s = stem(m.group(0))
        for tt, stems in own.items():
            if s in stems and tt not in matched:
                hits.setdefault(tt, []).append(m)
    for tt, ms in hits.items():
        matched.append(tt)
        first = first or ms[0]
        for m in ms:
            scan.text = scan.text[: m.start()] + " " * (m.end() - m.start()) + scan.text[m.end():]
    if not matched:
        return
    matched = sorted(set(matched))
    if len(matched) == 1:
        scan.clauses.append(_meta_eq("task_type", matched[0]))
    else:
        scan.clauses.append(f"or({', '.join(_meta_eq('task_type', t) for t in matched)})")
    assert first is not None
    scan.recognized.append((first.start(), first.group(0), "task type " + " or ".join(matched)))


def parse_question(question: str, vocab: Vocabulary, *, now: datetime | None = None) -> Translation:
    """The deterministic part: every recognised phrase as a clause, and the words left over."""
    scan = _Scan(" " + question.lower().replace("’", "'") + " ")
    now = now or datetime.now(UTC)
    _time(scan, now)
    _feedback(scan)
    _status(scan)
    _tools(scan, vocab)
    _task_types(scan, vocab)
    left = [w for w in words(scan.text) if w not in _FILLER and w not in vocab.agent_words and len(w) > 1]
    left = [w for w in left if not w.isdigit()]
    tree = None
    if scan.tools:
        tree_parts = [f"and(eq(run_type, \"tool\"), eq(name, {_q(t)}))" for t in scan.tools]
        tree = tree_parts[0] if len(tree_parts) == 1 else f"and({', '.join(tree_parts)})"
    return Translation(
        question=question,
        filter=_combine(scan.clauses),
        tree_filter=tree,
        tools=scan.tools,
        corrected=scan.corrected,
        recognized=[(phrase, meaning) for _, phrase, meaning in sorted(scan.recognized)],
        unmatched=" ".join(left),
    )


def _combine(clauses: Sequence[str]) -> str | None:
    clauses = list(dict.fromkeys(c for c in clauses if c))
    if not clauses:
        return None
    text = clauses[0] if len(clauses) == 1 else f"and({', '.join(clauses)})"
    return to_text(parse_filter(text))


# -- the model for the rest ------------------------------------------------------------------

_SYSTEM = """You translate part of a question about an AI agent's runs into ONE clause of LangSmith's \
run filter language. Grammar: and(c, ...), or(c, ...), eq|neq|gt|gte|lt|lte|in(field, value), \
has(tags, "x"), search("text"). Fields: name, run_type, status (success|error|pending), error, \
start_time, end_time (ISO 8601 strings), latency (e.g. "5s"), total_tokens, prompt_tokens, \
completion_tokens, tags, metadata_key/metadata_value pairs inside one and(...), \
feedback_key/feedback_score pairs inside one and(...). Root run metadata keys: task_type, success \
(true/false), error_type, scenario, model, steps, used_entries, retrieved_entries. \
Strings are double-quoted. Answer with JSON only: {"filter": "<clause>"} when the words describe runs, \
or {"filter": null, "reason": "<why>"} when they do not describe runs or you cannot express them."""


def _model_clause(model: BaseChatModel, t: Translation, vocab: Vocabulary, now: datetime) -> str:
    from langchain_core.messages import HumanMessage, SystemMessage

    context = (
        f"Now: {_iso(now)}. Agent: {vocab.agent}. Task types: {', '.join(vocab.task_types) or 'unknown'}. "
        f"Tools: {', '.join(vocab.tools) or 'unknown'}."
    )
    ask_text = (
        f"{context}\nQuestion: {t.question}\nAlready translated: {t.filter or 'nothing'}\n"
        f"Translate only these remaining words into one clause: {t.unmatched}"
    )
    messages: list[Any] = [SystemMessage(_SYSTEM), HumanMessage(ask_text)]
    problem = ""
    for attempt in range(2):
        if attempt:
            messages.append(HumanMessage(f"That was not usable: {problem}. Answer with the JSON object only."))
        try:
            reply = model.invoke(messages)
        except SelfhealError:
            raise
        except Exception as exc:
            raise SelfhealError(f"the chat model failed: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        messages.append(reply)
        data = _json_object(text)
        if data is None or "filter" not in data:
            problem = "not a JSON object with a 'filter' key"
            continue
        clause = data.get("filter")
        if clause is None or (isinstance(clause, str) and not clause.strip()):
            reason = str(data.get("reason") or "the model says these words do not describe runs")
            raise UntranslatableQuestion(
                f"cannot translate {t.unmatched!r} into a trace filter: {' '.join(reason.split())[:200]}"
                " (rephrase, or use `selfheal traces list FILTER`)"
            )
        if not isinstance(clause, str):
            problem = "'filter' must be a string"
            continue
        try:
            return to_text(parse_filter(clause))
        except FilterError as exc:
            problem = f"the filter does not parse: {exc.message}"
    raise UntranslatableQuestion(
        f"cannot translate {t.unmatched!r} into a trace filter: the model's answer was not a valid filter"
        f" ({problem}); nothing was run"
    )


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def _json_object(text: str) -> dict[str, Any] | None:
    fenced = _FENCED.search(text)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    for c in candidates:
        try:
            value = json.loads(c)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def translate(
    settings: Settings,
    question: str,
    *,
    reader: Any | None = None,
    model: BaseChatModel | None = None,
    now: datetime | None = None,
    vocabulary: Vocabulary | None = None,
) -> Translation:
    """The question as a validated filter: rules first, the chat model only for words they leave."""
    if not question.strip():
        raise UntranslatableQuestion("ask a question about runs, e.g. \"failed runs this week\"")
    now = now or datetime.now(UTC)
    vocab = vocabulary or agent_vocabulary(settings, reader)
    t = parse_question(question, vocab, now=now)
    if not t.unmatched:
        return t
    if model is None:
        from selfheal.models.providers import make_chat_model

        model = make_chat_model(settings)
    clause = _model_clause(model, t, vocab, now)
    t.model_clause = clause
    t.filter = _combine([c for c in (t.filter, clause) if c])
    return t


# -- running it -----------------------------------------------------------------------------


class _MatchedRoots:
    """A trace source whose root runs are exactly ``roots``; every other read goes to ``inner``."""

    def __init__(self, inner: Any, roots: list[RunRecord]) -> None:
        self._inner = inner
        self._roots = roots
        self.notes: list[str] = []

    def list_feedback(self, run_ids: Sequence[UUID] | None = None, **kwargs: Any) -> list[Any]:
        """Feedback is an extra in a summary: a source that cannot give it leaves a note instead."""
        from selfheal.tracing.analysis import feedback_for

        try:
            return feedback_for(self._inner, list(run_ids or []))
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            self.notes.append(f"feedback unavailable: {first}")
            return []

    def list_runs(self, project: Any = None, **kwargs: Any) -> list[RunRecord]:
        if kwargs.get("is_root") is True:
            return list(self._roots)
        return list(self._inner.list_runs(project, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _matching_roots(reader: Any, t: Translation, project: str) -> list[RunRecord]:
    if hasattr(reader, "query_runs"):
        roots: list[RunRecord] = reader.query_runs(t.filter, project=project, is_root=True, limit=None)
    else:
        roots = reader.list_runs(project, is_root=True, filter=t.filter, limit=None)
    if roots and t.tools:
        since = min(r.start_time for r in roots)
        for tool in t.tools:
            traces = {r.trace_id for r in reader.list_runs(project, run_type="tool", is_root=False, name=tool,
                                                             since=since, limit=None)}
            roots = [r for r in roots if r.trace_id in traces]
    if roots and t.corrected:
        from selfheal.tracing.analysis import feedback_for

        with_fix = {fb.run_id for fb in feedback_for(reader, [r.id for r in roots]) if fb.correction not in (None, "", {})}
        roots = [r for r in roots if r.id in with_fix]
    return roots


def _outcome(run: RunRecord) -> str:
    flag = run.metadata.get("success")
    if flag is True:
        return "success"
    if flag is False:
        return "failed" + (f" ({run.metadata['error_type']})" if run.metadata.get("error_type") else "")
    return "error" if run.status == "error" else run.status


def _example(run: RunRecord) -> ExampleRun:
    from selfheal.tracing.analysis import error_message

    task = run.inputs.get("task") if isinstance(run.inputs, Mapping) else None
    return ExampleRun(
        id=str(run.id),
        start_time=run.start_time,
        task_type=run.metadata.get("task_type"),
        outcome=_outcome(run),
        error=error_message(run.error) if run.error else None,
        task=str(task)[:200] if task else None,
    )


def ask(
    settings: Settings,
    question: str,
    *,
    source: str = "local",
    project: str | None = None,
    model: BaseChatModel | None = None,
    now: datetime | None = None,
    top: int = 5,
) -> AskResult:
    """Translate ``question``, run the filter on ``source`` (local | langsmith), summarise the matches.

    Raises :class:`UntranslatableQuestion` (exit 2) before any query when it
    cannot be translated; ``FilterError`` never escapes (every clause is parsed first).
    """
    from selfheal.interact.sources import open_reader

    project = project or settings.tracing.project
    with open_reader(settings, source, project) as reader:
        t = translate(settings, question, reader=reader, model=model, now=now)
        roots = _matching_roots(reader, t, project)
        matched = _MatchedRoots(reader, roots)
        analysis = analyze(matched, project=project, since=None, top=top)
    roots.sort(key=lambda r: r.start_time, reverse=True)
    # Newest first, failures before successes: a failure is what a question about runs usually chases.
    picked = sorted(roots, key=lambda r: _outcome(r) == "success")[:EXAMPLES]
    return AskResult(
        translation=t,
        project=project,
        source=source,
        matched=len(roots),
        analysis=analysis,
        examples=[_example(r) for r in picked],
        notes=matched.notes,
    )


def example_ids(result: AskResult) -> list[UUID]:
    """The example runs' ids (for a follow-up ``explain``)."""
    return [UUID(e.id) for e in result.examples]
