"""The full-rewrite baseline of the learning table: Dynamic Cheatsheet's cumulative mode (DC-Cu).

ACE replaces DC's "rewrite the whole cheatsheet after each run" with delta
operations because a rewrite can silently drop knowledge (context collapse).
To measure that claim here, this script does what DC-Cu does: the agent runs
the train examples in order (learning off, the way ``selfheal eval`` runs an
example); after each run the curator model (``model.roles.curator``, else the
agent's model) reads the previous cheatsheet, the task, a digest of the run
(tool calls and results shortened, the evaluator's verdict, the ground truth
when the dataset has one) and writes the WHOLE new cheatsheet. That text is
one cheatsheet entry, ``<cheatsheet root>/<agent>/strategies/dc-cumulative-<task type>.yaml``
(active; the same text once per task type so retrieval shows it on every
run, as DC-Cu shows the whole cheatsheet; ``--one-entry`` writes a single general
``dc-cumulative.yaml`` instead), written only after passing
selfheal's content guard and ``selfheal lint``; a rewrite that fails either
keeps the previous cheatsheet, and the log says why. Each step's tokens,
seconds, the cheatsheet's size and whether the agent was shown it go to a JSONL log (rewritten atomically
after every step, so an interrupted run leaves a consistent log and
cheatsheet). The final ``<cheatsheet root>/<agent>/`` is a learning-table
column's frozen cheatsheet; ``bench/learning_table.py`` reads the log as the
column's learning cost (``learning: {from: <log>}``).

    python bench/learning/full_rewrite.py --root . --out evals/sql_analyst/experiments/learning/dc-cumulative \\
        [--agent sql_analyst] [--split train] [--example NAME ...] [--limit N] [--start-from-seed] [--max-chars 6000]
        [--curator-max-tokens 1024] [--one-entry] [--cache record]

The curator's reply budget defaults to 1024 tokens (``model.roles.curator.max_tokens``):
a whole cheatsheet does not fit the agent's per-turn ``model.max_tokens``, and a
rewrite cut short would collapse the cheatsheet by construction, not by the method.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

ENTRY_ID = "dc-cumulative"
LOG_NAME = "log.jsonl"
DEFAULT_MAX_CHARS = 6000

#: Dynamic Cheatsheet's cumulative curator prompt, shortened for a small model's window.
CURATOR_PROMPT = """\
You maintain the CHEATSHEET of an AI agent: a short, self-contained memory of reusable strategies,
code or query fragments to copy, and mistakes to avoid, shown to the agent before every task.
After each task you receive the current cheatsheet and what happened in the latest run. Write the
COMPLETE new cheatsheet: keep every still-useful item of the current one (you rewrite it whole;
anything you leave out is lost), add what this run teaches, correct what it proves wrong, merge
duplicates. Prefer concrete, copyable fragments over prose. Never include run-specific ids, numbers
or answers, secrets, or instructions about anything but doing the task well.
Reply with the new cheatsheet only, between <cheatsheet> and </cheatsheet>."""

_TAGGED = re.compile(r"<cheatsheet>\s*(.*?)\s*(?:</cheatsheet>|$)", re.S | re.I)
_FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.S)


@dataclass
class Step:
    """One train example: the agent's run, then the curator's rewrite (kind ``step`` in the log)."""

    index: int
    example: str
    task_type: str
    passed: bool | None                 # the dataset's verdict (None: the run failed to run)
    run_status: str = "ok"
    run_error: str | None = None
    run_id: str | None = None
    run_tokens: int = 0
    run_s: float = 0.0
    run_calls: int = 0
    curator_tokens: int = 0
    curator_s: float = 0.0
    shown: bool = False                 # the agent's prompt held the cheatsheet (retrieval picked it)
    accepted: bool = False              # the rewrite replaced the cheatsheet
    rejected: list[str] = field(default_factory=list)
    cheatsheet_chars: int = 0           # after this step
    cheatsheet_tokens: int = 0
    kind: str = "step"

    @property
    def tokens(self) -> int:
        return self.run_tokens + self.curator_tokens

    @property
    def wall_s(self) -> float:
        return round(self.run_s + self.curator_s, 3)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(tokens=self.tokens, wall_s=self.wall_s, model_calls=self.run_calls + 1)
        return d


@dataclass
class FullRewriteResult:
    agent: str
    cheatsheet_dir: Path                # <root>/<agent>: the column's frozen cheatsheet
    entry_paths: list[Path]             # the entry (or its per-task-type copies); [] when nothing was accepted
    log_path: Path
    steps: list[Step]
    curator_model: str
    final_text: str

    def summary(self) -> dict[str, Any]:
        return {
            "kind": "summary", "agent": self.agent, "steps": len(self.steps),
            "train_passed": sum(1 for s in self.steps if s.passed),
            "accepted": sum(1 for s in self.steps if s.accepted),
            "shown": sum(1 for s in self.steps if s.shown),
            "tokens": sum(s.tokens for s in self.steps),
            "wall_s": round(sum(s.wall_s for s in self.steps), 3),
            "model_calls": sum(s.run_calls + 1 for s in self.steps),
            "curator_model": self.curator_model,
            "cheatsheet_chars": len(self.final_text),
        }


def extract_cheatsheet(reply: str) -> str:
    """The cheatsheet in a curator reply: between ``<cheatsheet>`` tags (DC's format), else the reply."""
    m = _TAGGED.search(reply)
    text = (m.group(1) if m else reply).strip()
    fenced = _FENCE.match(text)
    return (fenced.group(1) if fenced else text).strip()


def run_digest(outcome: Any, *, passed: bool, reason: str, reference: str | None) -> str:
    """The run as the curator reads it: selfheal's digest (tool results shortened) with the dataset verdict."""
    from selfheal.optimize.digest import CheckDigest, RunDigest, ToolCallDigest, preview

    calls = [ToolCallDigest(name=str(c.get("name", "?")), args=c.get("args"),
                            result="" if c.get("status") == "error" else preview(str(c.get("output", ""))),
                            error=preview(str(c.get("output", ""))) if c.get("status") == "error" else None)
             for c in outcome.tool_calls]
    digest = RunDigest(
        run_id=outcome.run_id, task=outcome.task, task_type=outcome.task_type or "general", success=passed,
        verified=outcome.verified, error_type=outcome.error_type, reason=reason,
        checks=[CheckDigest(description=str(c.get("description", "")), passed=bool(c.get("passed")),
                            detail=str(c.get("detail", ""))) for c in outcome.checks],
        tool_calls=calls, final_answer=outcome.final_answer, used_entries=list(outcome.used_entries),
        reference=None,
    )
    text = digest.render()
    if reference:
        text += f"\nGROUND TRUTH:\n{reference}"
    return text


def curator_messages(previous: str, task: str, digest: str) -> list[Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    current = previous.strip() or "(empty: this is the first task)"
    return [SystemMessage(content=CURATOR_PROMPT),
            HumanMessage(content=f"CURRENT CHEATSHEET:\n{current}\n\nLATEST TASK:\n{task}\n\n"
                                 f"WHAT HAPPENED:\n{digest}\n\nWrite the complete new cheatsheet.")]


def _usage_tokens(message: Any) -> int:
    meta = getattr(message, "usage_metadata", None) or {}
    total = int(meta.get("total_tokens") or 0)
    if total:
        return total
    usage = (getattr(message, "response_metadata", None) or {}).get("token_usage") or {}
    return int(usage.get("total_tokens") or 0)


def _entry(text: str, runs: list[str], entry_id: str = ENTRY_ID, task_type: str = "general") -> Any:
    from selfheal.cheatsheet.model import Source, Strategy

    return Strategy(id=entry_id, task_type=task_type, status="active",
                    pattern="any task (the cumulative cheatsheet, rewritten whole after each run)",
                    action=text, tags=["dc-cumulative"],
                    source=Source(kind="dc-cumulative", runs=runs[-5:], created=datetime.now(UTC)))


def entry_slots(task_types: Sequence[str] | None) -> list[tuple[str, str]]:
    """(entry id, task type) of the copies to write: one general entry, or one per task type.

    Retrieval shows a general entry only when it shares a word with the task,
    but always shows an entry of the run's own task type; DC-Cu puts the whole
    cheatsheet in every prompt, so per-task-type copies of the one text are
    what makes every run see it. The copies are the same text (the learning
    table counts it once in the context size).
    """
    if not task_types:
        return [(ENTRY_ID, "general")]
    out = []
    for tt in sorted(set(task_types)):
        slug = re.sub(r"[^a-z0-9_-]+", "-", tt.lower()).strip("-_") or "general"
        out.append((f"{ENTRY_ID}-{slug}"[:80], tt))
    return out


def _write_log(path: Path, lines: list[dict[str, Any]]) -> None:
    from selfheal.yamlio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines))


def _seed_text(settings: Settings) -> str:
    """The seed cheatsheet's active entries as text (what the agent sees), the start of ``--start-from-seed``."""
    from selfheal.cheatsheet.store import load_cheatsheet

    return "\n".join(f"- {e.text()}" for e in load_cheatsheet(settings.cheatsheet_dir).active())


def _lint_errors(settings: Settings, entry_files: Sequence[Path], tools: set[str]) -> list[str]:
    """``selfheal lint``'s errors on the cumulative entry's files (once per distinct message)."""
    from selfheal.lint import lint_repository

    issues = lint_repository(settings, known_tools=tools, datasets=False)
    targets = {f.resolve() for f in entry_files}
    found = [i.message for i in issues if i.severity == "error" and (Path(settings.root) / i.path).resolve() in targets]
    return list(dict.fromkeys(found))


def full_rewrite(
    settings: Settings,
    out_dir: Path,
    *,
    split: str = "train",
    names: Sequence[str] | None = None,
    limit: int | None = None,
    start_from_seed: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
    per_task_type: bool = True,
    curator_model: BaseChatModel | None = None,
) -> FullRewriteResult:
    """Run DC-Cu over ``split`` (in dataset order) and leave the cheatsheet in ``out_dir/cheatsheet/<agent>``.

    ``out_dir`` gets ``cheatsheet/<agent>/strategies/dc-cumulative.yaml`` and
    ``log.jsonl`` (``per_task_type``: one copy per task type, see
    :func:`entry_slots`). The agent's runs and the curator use ``settings``' models
    (``model.roles.curator`` for the curator); ``curator_model`` overrides it.
    """
    from selfheal.agent.runner import run_task
    from selfheal.agents.registry import get_agent
    from selfheal.cheatsheet.guard import ContentGuard
    from selfheal.cheatsheet.store import entry_path, save_entry
    from selfheal.errors import SelfhealError
    from selfheal.evaluation.dataset import load_dataset
    from selfheal.evaluation.evaluators import evaluate_outcome
    from selfheal.optimize.batch_reflect import ground_truths
    from selfheal.optimize.roles import make_role_model, role_identity, role_settings
    from selfheal.redact import make_redactor
    from selfheal.tokens import count_tokens
    from selfheal.yamlio import atomic_write_text

    out_dir = Path(out_dir)
    agent_name = settings.agent
    initial = _seed_text(settings) if start_from_seed else ""
    cheatsheet_root = out_dir / "cheatsheet"
    cheatsheet_dir = cheatsheet_root / agent_name
    if cheatsheet_dir.exists() and any(cheatsheet_dir.rglob("*.yaml")):
        raise SelfhealError(f"{cheatsheet_dir} already holds a cheatsheet; give a new --out")
    cheatsheet_dir.mkdir(parents=True, exist_ok=True)
    run_settings = settings.model_copy(update={
        "paths": settings.paths.model_copy(update={"cheatsheet": str(cheatsheet_root.resolve())}),
    })
    assert run_settings.cheatsheet_dir.resolve() == cheatsheet_dir.resolve()
    dataset = load_dataset(settings)
    examples = dataset.select(split, names=list(names) if names else None)
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise SelfhealError(f"no {split} examples to learn from")
    plugin = get_agent(settings)
    tools = set(plugin.tool_names())
    guard = ContentGuard(max_chars=max_chars, min_chars=20, redactor=make_redactor(settings), allowed_tools=tools)
    truths = ground_truths(settings, examples)
    curator = curator_model or make_role_model(settings, "curator")
    curator_id = role_identity(settings, "curator") if curator_model is None else str(
        getattr(curator, "model_name", None) or type(curator).__name__)
    log_path = out_dir / LOG_NAME
    if per_task_type:
        kinds = {e.task_type for e in dataset.examples} | {plugin.classify(e.task) for e in dataset.examples}
        slots = entry_slots(sorted(kinds))
    else:
        slots = entry_slots(None)
    targets = [entry_path(cheatsheet_dir, _entry("placeholder text", [], eid, tt)) for eid, tt in slots]
    ids = {eid for eid, _ in slots}

    def write(text: str, runs: list[str]) -> None:
        for eid, tt in slots:
            save_entry(cheatsheet_dir, _entry(text, runs, eid, tt))

    text, runs, steps = initial, [], []
    if text:
        write(text, [])
    header = {"kind": "start", "agent": agent_name, "split": split, "examples": [e.name for e in examples],
              "curator_model": curator_id, "start_from_seed": start_from_seed, "max_chars": max_chars,
              "entries": [eid for eid, _ in slots],
              "curator_max_tokens": role_settings(settings, "curator").model.max_tokens,
              "started": datetime.now(UTC).isoformat()}
    for i, ex in enumerate(examples):
        step = Step(index=i, example=ex.name, task_type=ex.task_type, passed=None)
        started = time.perf_counter()
        try:
            outcome = run_task(run_settings, ex.task, scenario=ex.scenario or None, learn=False,
                               metadata={"example_id": ex.id, "split": ex.split}, tags=["dc-cumulative"])
        except Exception as exc:  # noqa: BLE001 - as the eval runner: a failed run is a logged step, not the end
            step.run_status = "error"
            step.run_error = " ".join(str(exc).split())[:300] or type(exc).__name__
            step.run_s = round(time.perf_counter() - started, 3)
            step.rejected.append("the run failed: nothing to learn from")
        else:
            passed, _, scores = evaluate_outcome(ex, outcome, dataset.spec.evaluators)
            step.passed, step.run_id = passed, outcome.run_id
            step.run_tokens = int((outcome.usage or {}).get("total_tokens", 0) or 0)
            step.run_s, step.run_calls = round(outcome.latency_s, 3), int(outcome.steps)
            step.shown = bool(text) and bool(ids & set(outcome.retrieved_entries))
            runs.append(outcome.run_id)
            reason = "; ".join(f"{s.key}: {s.comment}" for s in scores if s.comment)
            digest = run_digest(outcome, passed=passed, reason=reason, reference=truths.get(ex.name))
            t0 = time.perf_counter()
            try:
                reply = curator.invoke(curator_messages(text, ex.task, digest))
            except Exception as exc:  # noqa: BLE001 - the previous cheatsheet stays; the log says why
                reply = None
                step.rejected.append(f"curator error: {' '.join(str(exc).split())[:300]}")
            step.curator_s = round(time.perf_counter() - t0, 3)
            step.curator_tokens = _usage_tokens(reply) if reply is not None else 0
            verdict = guard.check(extract_cheatsheet(str(reply.content)), field="action") if reply is not None else None
            if verdict is None:
                pass
            elif not verdict.ok:
                step.rejected += [f"guard: {r}" for r in verdict.reasons]
            else:
                previous = {t: t.read_text(encoding="utf-8") if t.exists() else None for t in targets}
                write(verdict.text, runs)
                errors = _lint_errors(run_settings, targets, tools)
                if errors:
                    step.rejected += [f"lint: {e}" for e in errors]
                    for t, old in previous.items():
                        if old is None:
                            t.unlink(missing_ok=True)
                        else:
                            atomic_write_text(t, old)
                else:
                    text, step.accepted = verdict.text, True
        step.cheatsheet_chars, step.cheatsheet_tokens = len(text), count_tokens(text)
        steps.append(step)
        _write_log(log_path, [header, *(s.to_dict() for s in steps)])
    result = FullRewriteResult(agent=agent_name, cheatsheet_dir=cheatsheet_dir,
                               entry_paths=[t for t in targets if t.exists()], log_path=log_path,
                               steps=steps, curator_model=curator_id, final_text=text)
    _write_log(log_path, [header, *(s.to_dict() for s in steps), result.summary()])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("."), help="the repository (selfheal.yaml)")
    ap.add_argument("--agent", default=None, help="the agent (default: selfheal.yaml's)")
    ap.add_argument("--out", type=Path, required=True, help="directory for cheatsheet/<agent>/ and log.jsonl")
    ap.add_argument("--split", default="train", choices=["train", "dev", "test", "all"])
    ap.add_argument("--example", dest="names", action="append", default=None, metavar="NAME")
    ap.add_argument("--limit", type=int, default=None, help="only the first N examples of the split")
    ap.add_argument("--start-from-seed", action="store_true",
                    help="start from the seed cheatsheet's entries as text (default: empty, as DC-Cu)")
    ap.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                    help="a rewrite longer than this is refused by the guard (the previous one stays)")
    ap.add_argument("--curator-max-tokens", type=int, default=1024,
                    help="the curator's reply budget (model.roles.curator.max_tokens): a whole cheatsheet needs"
                         " more than an agent turn (model.max_tokens); 0 keeps the configuration's")
    ap.add_argument("--one-entry", action="store_true",
                    help="one general entry instead of a copy per task type (retrieval may then not show it)")
    ap.add_argument("--cache", choices=["replay", "record", "auto", "off"], default=None,
                    help="model response cache mode (default: model.cache_mode)")
    args = ap.parse_args(argv)

    from selfheal.config import load_settings
    from selfheal.errors import SelfhealError

    overrides: dict[str, Any] = {}
    model: dict[str, Any] = {}
    if args.agent:
        overrides["agent"] = args.agent
    if args.cache:
        model["cache_mode"] = args.cache
    if args.curator_max_tokens:
        model["roles"] = {"curator": {"max_tokens": args.curator_max_tokens}}
    if model:
        overrides["model"] = model
    try:
        settings = load_settings(args.root, overrides=overrides)
        result = full_rewrite(settings, args.out, split=args.split, names=args.names, limit=args.limit,
                              start_from_seed=args.start_from_seed, max_chars=args.max_chars,
                              per_task_type=not args.one_entry)
    except SelfhealError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(result.summary(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
