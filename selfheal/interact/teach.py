"""``selfheal teach "RULE"``: a person's lesson, through the same guard and deltas as learned ones.

The words become one ACE delta — an ADD (or, with ``update=ID``, an UPDATE)
— applied by :func:`selfheal.cheatsheet.ops.apply_operations` to a scratch
copy of the cheatsheet: the same content guard (injection, secrets, unknown
tools, length), the same duplicate check, the same file format. What differs
is provenance: ``source: {kind: user, author: "Name <email>"}`` from git
config, and the entry starts ``active`` — a person wrote it and reviews it
in the pull request. Near-duplicates are caught before that by embedding
similarity (``embeddings.duplicate_threshold``) when an embedder is
available; exact duplicates (same words) always.

``as_="instruction"`` adds a context instruction to ``context.yaml`` instead
(guarded and deduplicated the same way, the file's ``version`` bumped, a
comment naming the author above it).

The change is shown as a diff and then proposed as a branch + PR through
:func:`selfheal.gitops.publish.publish_change` (``publish=True``), written
to the working tree (``publish=False``), or neither (``dry_run``).

The words are kept verbatim as the entry's rule/action/lesson; the
condition is the clause the words give ("when ...", "if ...", "before ...")
and the task type is the agent plug-in's ``classify`` of the words unless
given — no model is involved, so what a person teaches is what gets reviewed.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfheal.cheatsheet.guard import ContentGuard, normalize
from selfheal.cheatsheet.model import SECTIONS
from selfheal.errors import SelfhealError
from selfheal.scratch import scratch_dir

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.gitops.publish import PublishResult
    from selfheal.models.embeddings import Embedder

__all__ = ["TeachRejected", "TeachResult", "git_author", "teach"]

#: The field a person's words fill, per section (the "what to do" part).
MAIN_FIELD = {"heuristics": "rule", "strategies": "action", "failure_patterns": "lesson", "code_snippets": "snippet"}
#: The field the condition fills, per section.
CONDITION_FIELD = {"heuristics": "condition", "strategies": "pattern", "failure_patterns": "pattern",
                   "code_snippets": "purpose"}


class TeachRejected(SelfhealError):
    """The lesson was not accepted (guard, duplicate, unknown id): nothing changed (exit 1)."""

    exit_code = 1


class TeachResult(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    kind: Literal["entry", "instruction"]
    op: Literal["ADD", "UPDATE"]
    id: str | None = None
    section: str | None = None
    task_type: str | None = None
    author: str | None = None
    changes: list[str] = Field(default_factory=list)
    files: dict[str, str | None] = Field(default_factory=dict)
    diff: str = ""
    written: bool = False
    dry_run: bool = False
    published: Any = None  # PublishResult when proposed as a PR
    notes: list[str] = Field(default_factory=list)


# -- who and what --------------------------------------------------------------------------


def git_author(root: Path) -> str | None:
    """``Name <email>`` from the repository's git config (local, then global), or None."""
    try:
        import git

        reader = git.Repo(root, search_parent_directories=True).config_reader()
        name = reader.get_value("user", "name", "")
        email = reader.get_value("user", "email", "")
    except Exception:
        return None
    name, email = str(name or "").strip(), str(email or "").strip()
    if not name and not email:
        return None
    return f"{name} <{email}>" if name and email else (name or email)


_CLAUSE_HEAD = re.compile(r"^\s*(when|whenever|if|before|after|for)\s+(.+?),\s*(.+)$", re.I | re.S)
_CLAUSE_IN = re.compile(r"\b(when|whenever|if|before|after)\s+(.+?)\s*[.!]?$", re.I | re.S)


def condition_of(text: str) -> str:
    """The situation a rule is for, read from its own words ("before memory changes" -> "planning memory changes")."""
    m = _CLAUSE_HEAD.match(text) or _CLAUSE_IN.search(text)
    if m is None:
        return "any task of this kind"
    word, clause = m.group(1).lower(), m.group(2).strip().rstrip(".!")
    if word == "before":
        return f"planning {clause}"
    if word == "after":
        return f"after {clause}"
    if word == "for":
        return clause
    return clause


def _fields(section: str, text: str) -> dict[str, str]:
    words = " ".join(text.split())
    if section == "code_snippets":
        purpose, sep, code = text.partition("::")
        if not sep or not code.strip():
            raise TeachRejected('a code snippet is taught as "PURPOSE :: CODE"')
        return {"purpose": " ".join(purpose.split()), "snippet": code.strip()}
    return {CONDITION_FIELD[section]: condition_of(words), MAIN_FIELD[section]: words}


def _task_type(settings: Settings, text: str) -> str:
    try:
        from selfheal.agents.registry import get_agent

        tt = str(get_agent(settings).classify(text) or "general")
    except Exception:
        return "general"
    return tt if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,59}", tt) else "general"


def _tool_names(settings: Settings) -> set[str] | None:
    try:
        from selfheal.agents.registry import get_agent

        return set(get_agent(settings).tool_names()) or None
    except Exception:
        return None


# -- near duplicates -------------------------------------------------------------------------


def _embedder(settings: Settings, notes: list[str]) -> Embedder | None:
    from selfheal.errors import ModelError
    from selfheal.models.embeddings import make_embedder

    try:
        return make_embedder(settings)
    except (ModelError, OSError) as exc:
        notes.append(f"near-duplicate check by meaning skipped ({exc}); exact duplicates are still refused")
        return None


def nearest(embedder: Embedder, text: str, candidates: Sequence[tuple[str, str]]) -> tuple[str, float] | None:
    """The candidate ``(id, text)`` most similar to ``text`` (cosine), or None when there are none."""
    import numpy as np

    if not candidates:
        return None
    vecs = np.asarray(embedder.embed([text, *[t for _, t in candidates]]), dtype=np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    sims = vecs[1:] @ vecs[0]
    best = int(np.argmax(sims))
    return candidates[best][0], float(sims[best])


def _check_near(settings: Settings, text: str, candidates: Sequence[tuple[str, str]], notes: list[str],
                embedder: Embedder | None, skip: str | None = None) -> None:
    candidates = [(i, t) for i, t in candidates if i != skip]
    for other_id, other in candidates:
        if normalize(other) == normalize(text):
            raise TeachRejected(f"already taught: duplicate of '{other_id}' (nothing changed)")
    emb = embedder if embedder is not None else _embedder(settings, notes)
    if emb is None:
        return
    found = nearest(emb, text, candidates)
    threshold = settings.embeddings.duplicate_threshold
    if found is not None and found[1] >= threshold:
        raise TeachRejected(
            f"already taught: near-duplicate of '{found[0]}' (similarity {found[1]:.2f} >= {threshold:.2f});"
            f" change it with --update {found[0]} instead (nothing changed)"
        )


# -- the two targets ---------------------------------------------------------------------------


def _rel(settings: Settings, path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path(settings.root).resolve())
    except ValueError:
        return Path(path.name)


def _entry_change(settings: Settings, text: str, *, section: str, task_type: str | None, update: str | None,
                  runs: list[str], author: str | None, now: datetime, embedder: Embedder | None,
                  result: TeachResult) -> None:
    from selfheal.cheatsheet.ops import AddOp, OperationBatch, UpdateOp, apply_operations
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.optimize.offline import changed_files

    cs_dir = Path(settings.cheatsheet_dir)
    sheet = load_cheatsheet(cs_dir)
    guard = ContentGuard(allowed_tools=_tool_names(settings))
    if update is not None:
        entry = sheet.get(update)
        if entry is None:
            raise TeachRejected(f"no cheatsheet entry '{update}' to update")
        section = entry.section
        field = MAIN_FIELD[section]
        op: Any = UpdateOp(op="UPDATE", id=update, fields={field: " ".join(text.split()) if field != "snippet"
                                                             else text.strip()}, reason=f"taught: {text}")
        result.task_type = entry.task_type
    else:
        if section not in SECTIONS:
            raise TeachRejected(f"unknown section {section!r} ({', '.join(SECTIONS)})")
        result.task_type = task_type or _task_type(settings, text)
        op = AddOp(op="ADD", section=section, task_type=result.task_type, fields=_fields(section, text),
                   reason=f"taught by {author or 'a user'}")  # type: ignore[arg-type]
    live = [(e.id, e.text()) for e in sheet if e.section == section and e.status != "retired"]
    probe = text if update is not None else " ".join(text.split())
    _check_near(settings, probe, live, result.notes, embedder, skip=update)
    result.section = section
    with scratch_dir(settings.state_dir, "selfheal-teach-", "teach") as tmp:
        scratch = Path(tmp) / "cheatsheet"
        if cs_dir.exists():
            shutil.copytree(cs_dir, scratch, ignore=shutil.ignore_patterns(".*"))
        else:
            scratch.mkdir()
        applied = apply_operations(scratch, OperationBatch(operations=[op]), source_runs=runs, now=now, guard=guard,
                                   source_kind="user", author=author, initial_status="active")
        if applied.rejected:
            reason = applied.rejected[0][1]
            if reason.startswith("duplicate of"):
                raise TeachRejected(f"already taught: {reason} (nothing changed)")
            raise TeachRejected(f"not accepted: {reason} (nothing changed)")
        result.id = applied.changes[0].entry_id
        result.changes = [c.line for c in applied.changes]
        result.files = changed_files(cs_dir, scratch, _rel(settings, cs_dir))


def _slug(text: str, existing: set[str]) -> str:
    stop = {"a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "always", "never", "before",
            "after", "when", "if", "is", "are", "be", "it"}
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in stop][:5]
    base = "ins-" + ("-".join(words) or "taught")[:60].strip("-")
    candidate, n = base, 2
    while candidate in existing:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _instruction_change(settings: Settings, text: str, *, update: str | None, author: str | None, now: datetime,
                        embedder: Embedder | None, result: TeachResult) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from selfheal.context.model import CONTEXT_FILENAME, ContextFile
    from selfheal.yamlio import dump_yaml, read_yaml, to_plain

    path = Path(settings.prompts_dir) / CONTEXT_FILENAME
    if not path.is_file():
        raise SelfhealError(f"{path}: context file not found")
    data = read_yaml(path)
    guard = ContentGuard(allowed_tools=_tool_names(settings))
    verdict = guard.check(text, field="text")
    if not verdict.ok:
        raise TeachRejected(f"not accepted: {'; '.join(verdict.reasons)} (nothing changed)")
    clean = " ".join(verdict.text.split())
    items = data.get("instructions")
    if items is None:
        items = data["instructions"] = CommentedSeq()
    existing = {str(i.get("id")): str(i.get("text", "")) for i in items if isinstance(i, dict)}
    _check_near(settings, clean, list(existing.items()), result.notes, embedder, skip=update)
    stamp = f"taught by {author or 'a user'} on {now:%Y-%m-%d} (selfheal teach)"
    if update is not None:
        idx = next((n for n, i in enumerate(items) if isinstance(i, dict) and i.get("id") == update), None)
        if idx is None:
            raise TeachRejected(f"no context instruction '{update}' to update")
        items[idx]["text"] = clean
        result.id, result.op = update, "UPDATE"
        result.changes = [f"UPDATE instruction {update}: text — {stamp}"]
    else:
        new_id = _slug(clean, set(existing))
        items.append(CommentedMap([("id", new_id), ("text", clean)]))
        try:
            items.yaml_set_comment_before_after_key(len(items) - 1, before=stamp, indent=2)
        except Exception:  # a comment is a courtesy; the commit and PR carry the author too
            pass
        result.id = new_id
        result.changes = [f"ADD instruction {new_id} — {stamp}"]
    data["version"] = int(data.get("version") or 0) + 1
    ContextFile.model_validate(to_plain(data))  # never write a context the loader would refuse
    result.files = {_rel(settings, path).as_posix(): dump_yaml(data)}


# -- the library call ---------------------------------------------------------------------------


def teach(
    settings: Settings,
    text: str,
    *,
    as_: Literal["entry", "instruction"] = "entry",
    section: str = "heuristics",
    task_type: str | None = None,
    update: str | None = None,
    runs: Sequence[str] = (),
    publish: bool = True,
    dry_run: bool = False,
    author: str | None = None,
    now: datetime | None = None,
    embedder: Embedder | None = None,
) -> TeachResult:
    """Turn ``text`` into a user-authored entry (or instruction) and propose, write or just show it.

    Raises :class:`TeachRejected` (exit 1) when the guard refuses it or it
    duplicates what is there; nothing is written then.
    """
    if not text or not text.strip():
        raise SelfhealError("teach what? give the rule in words, e.g. \"Always check VPC config before memory changes\"")
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    who = author or git_author(Path(settings.root))
    result = TeachResult(kind=as_, op="UPDATE" if update else "ADD", author=who, dry_run=dry_run)
    if as_ == "instruction":
        _instruction_change(settings, text, update=update, author=who, now=when, embedder=embedder, result=result)
    else:
        _entry_change(settings, text, section=section, task_type=task_type, update=update, runs=list(runs),
                      author=who, now=when, embedder=embedder, result=result)
    from selfheal.optimize.offline import _write_working_tree, unified_diff

    result.diff = unified_diff(Path(settings.root), result.files)
    if dry_run or not result.files:
        return result
    if publish:
        result.published = _publish(settings, result, text, list(runs))
    else:
        _write_working_tree(Path(settings.root), result.files)
        result.written = True
    return result


def _publish(settings: Settings, result: TeachResult, text: str, runs: list[str]) -> PublishResult:
    from selfheal.gitops.changeset import ChangeSet, FileChange
    from selfheal.gitops.publish import publish_change

    words = " ".join(text.split())
    title = f"selfheal teach: {words[:60]}{'…' if len(words) > 60 else ''}"
    change = ChangeSet(
        kind="manual",
        title=title,
        summary=[*result.changes, f"Taught by {result.author or 'a user'}: {words}"],
        files=[FileChange(path=p, content=c) for p, c in result.files.items()],
        trace_ids=runs,
    )
    # A person asked for this one change: the rate limit on automated PRs does not apply.
    return publish_change(settings, change, force=True)


def teach_correction(
    settings: Settings,
    run_id: str,
    correction: str,
    *,
    publish: bool = False,
    dry_run: bool = False,
    embedder: Embedder | None = None,
) -> TeachResult:
    """``selfheal feedback RUN --correction "..."``: the correction as a lesson for the run's task type.

    The entry's provenance names the run; its task type is the run's (from the
    trace), so the lesson is retrieved for runs like the one corrected.
    """
    from selfheal.tracing.store import LocalTraceStore

    task_type = None
    with LocalTraceStore.from_settings(settings) as store:
        run = store.get_run(run_id)
        if run is not None:
            tt = run.metadata.get("task_type")
            task_type = str(tt) if isinstance(tt, str) and tt else None
    return teach(settings, correction, task_type=task_type, runs=[str(run_id)], publish=publish,
                 dry_run=dry_run, embedder=embedder)
