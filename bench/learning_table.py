"""The learning table: every way of learning, side by side on one agent's test split.

Reads a column manifest ``evals/<agent>/experiments/learning/columns.yaml``
listing the columns in order; each column is one test-split evaluation
(``selfheal eval --split test --results FILE``) of the context and cheatsheet
one way of learning produced, frozen beside it, and the response cache it was
recorded with. Prints (or writes) a Markdown table, or JSON with ``--json``:
per column success k/n with its Wilson 95% interval, the delta in points,
McNemar's exact p and the flips both ways against the reference column (the
seed), examples without a verdict, the learning cost (tokens, wall time,
model calls), tokens and seconds per test example, the size of the context
the column ran with (so a collapsed context shows), then success per task
type and per convention (``--group-by``). A column listed with
``status: not run`` prints as such, with its reason.

Manifest (paths relative to the manifest's directory)::

    agent: sql_analyst            # default: the directory name under evals/
    dataset: sql_analyst          # default: the agent
    split: test
    reference: seed               # the column the others are paired against
    group_by: [conventions]       # list-valued example keys (default: conventions when examples have it)
    columns:
      - id: seed
        label: seed context
        results: seed/test.json   # ExperimentResult JSON, --format json report, shard file or paired file
        side: candidate           # which side of a paired/shard file (default: candidate)
        prompts: seed/prompts     # the frozen prompts/<agent> directory it ran with
        cheatsheet: seed/cheatsheet
        cache: ../../replay       # the response cache it was recorded into
        overrides: {}             # settings overrides it ran with (replayed the same way)
        learning: {tokens: 0, wall_s: 0, model_calls: 0}
      - id: optimize
        learning: {from: optimize/report.json}   # an optimize/demos --json report's ``cost`` rows
                                                 # (minus exclude_phases, default [confirm])
      - id: dc-cumulative
        learning: {from: full-rewrite/log.jsonl} # bench/learning/full_rewrite.py's log
      - id: demos
        status: not run
        reason: no train example passed, so there is nothing to bootstrap

    python bench/learning_table.py evals/sql_analyst/experiments/learning/columns.yaml [--json] [--output FILE]
    python bench/learning_table.py <manifest> --run COLUMN   # its test split, live, once: writes its results
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from selfheal.errors import SelfhealError  # noqa: E402
from selfheal.evaluation.columns import Column, ColumnStats, ColumnTable, compare_columns  # noqa: E402
from selfheal.evaluation.results import ExampleResult, ExperimentResult  # noqa: E402
from selfheal.tokens import count_tokens  # noqa: E402
from selfheal.yamlio import atomic_write_text, read_yaml, to_plain  # noqa: E402

MANIFEST = "columns.yaml"
_CONTEXT_SUFFIXES = (".yaml", ".yml", ".j2", ".md", ".txt", ".jinja")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LearningCost(_Strict):
    """What learning cost: given, or read from an optimize report / a full-rewrite log (``from``)."""

    tokens: int | None = None
    wall_s: float | None = None
    model_calls: int | None = None
    from_: str | None = Field(default=None, alias="from")
    #: phases of an optimize report that are not learning (``confirm`` runs the test split; with
    #: ``--test-split dev`` it is a dev run, part of choosing: give ``exclude_phases: []``)
    exclude_phases: list[str] = Field(default_factory=lambda: ["confirm"])
    note: str = ""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ColumnSpec(_Strict):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    label: str = ""
    status: Literal["ok", "not run"] = "ok"
    reason: str = ""
    results: str | None = None
    side: Literal["candidate", "baseline"] = "candidate"
    prompts: str | None = None
    cheatsheet: str | None = None
    cache: str | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    learning: LearningCost = Field(default_factory=LearningCost)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if self.status == "ok" and not self.results:
            raise ValueError(f"column {self.id}: give 'results', or 'status: not run' with a reason")
        if self.status == "not run" and not self.reason.strip():
            raise ValueError(f"column {self.id}: a column that was not run says why ('reason')")
        return self


class Manifest(_Strict):
    agent: str | None = None
    dataset: str | None = None
    split: str = "test"
    reference: str | None = None       # default: the first column
    group_by: list[str] | None = None
    columns: list[ColumnSpec] = Field(min_length=1)


# -- loading --------------------------------------------------------------------------
def load_manifest(path: Path) -> tuple[Manifest, Path]:
    """The validated manifest and its directory (the base of its relative paths)."""
    path = Path(path)
    if not path.is_file():
        raise SelfhealError(f"{path}: no column manifest")
    try:
        manifest = Manifest.model_validate(to_plain(read_yaml(path)) or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise SelfhealError(f"{path}: {loc + ': ' if loc else ''}{err['msg']}") from None
    ids = [c.id for c in manifest.columns]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SelfhealError(f"{path}: duplicate column id(s) {', '.join(dup)}")
    if manifest.reference is not None and manifest.reference not in ids:
        raise SelfhealError(f"{path}: reference {manifest.reference!r} is not a column")
    return manifest, path.parent


def agent_of(manifest: Manifest, base: Path) -> str:
    """The manifest's agent, or the ``<agent>`` of ``evals/<agent>/experiments/learning/``."""
    if manifest.agent:
        return manifest.agent
    parts = base.resolve().parts
    if "evals" in parts and parts.index("evals") + 1 < len(parts):
        return parts[parts.index("evals") + 1]
    raise SelfhealError(f"{base}: say 'agent:' in the manifest (it is not under evals/<agent>/)")


def load_results(path: Path, side: str = "candidate") -> ExperimentResult:
    """One experiment from any file the eval commands write (or a paired baseline/candidate file)."""
    from selfheal.evaluation.shard import ShardResult, load_result_file

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SelfhealError(f"cannot read {path}: {exc.strerror or exc}") from None
    if isinstance(data, dict) and isinstance(data.get(side), dict) and "results" in data[side]:
        return ExperimentResult.model_validate(data[side])
    loaded = load_result_file(Path(path))
    if isinstance(loaded, ShardResult):
        exp = loaded.candidate if side == "candidate" else loaded.baseline
        if exp is None:
            raise SelfhealError(f"{path}: has no {side} side")
        return exp
    return loaded


def learning_cost(spec: LearningCost, base: Path) -> dict[str, Any]:
    """``{tokens, wall_s, model_calls, note}``; read from ``from`` when given (explicit numbers win)."""
    out: dict[str, Any] = {"tokens": None, "wall_s": None, "model_calls": None, "note": spec.note}
    if spec.from_:
        out.update(_cost_from_file(base / spec.from_, {"total", *spec.exclude_phases}))
    for key in ("tokens", "wall_s", "model_calls"):
        value = getattr(spec, key)
        if value is not None:
            out[key] = value
    return out


def _cost_from_file(path: Path, skip_phases: set[str]) -> dict[str, Any]:
    if not path.is_file():
        raise SelfhealError(f"{path}: learning cost file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":  # one line per learning step (bench/learning/full_rewrite.py)
        steps = [json.loads(line) for line in text.splitlines() if line.strip()]
        steps = [s for s in steps if s.get("kind", "step") == "step"]
        return {
            "tokens": sum(int(s.get("tokens") or 0) for s in steps),
            "wall_s": round(sum(float(s.get("wall_s") or 0) for s in steps), 3),
            "model_calls": sum(int(s.get("model_calls") or 0) for s in steps),
        }
    data = json.loads(text)
    rows = _find_cost_rows(data)
    if rows is None:
        if isinstance(data, dict) and {"tokens", "wall_s"} <= set(data):
            return {k: data.get(k) for k in ("tokens", "wall_s", "model_calls")}
        raise SelfhealError(f"{path}: no 'cost' rows (an optimize report) and no tokens/wall_s")
    learning = [r for r in rows if r.get("phase") not in skip_phases]
    return {
        "tokens": sum(int(r.get("tokens") or 0) for r in learning),
        "wall_s": round(sum(float(r.get("wall_s") or 0) for r in learning), 3),
        "model_calls": sum(int(r.get("model_calls") or 0) for r in learning),
    }


def _find_cost_rows(data: Any) -> list[dict[str, Any]] | None:
    """The ``cost`` list of an optimize report (at the top or one level down)."""
    if isinstance(data, dict):
        if isinstance(data.get("cost"), list):
            return [r for r in data["cost"] if isinstance(r, dict)]
        for value in data.values():
            if isinstance(value, dict) and isinstance(value.get("cost"), list):
                return [r for r in value["cost"] if isinstance(r, dict)]
    return None


def context_size(prompts: Path | None, cheatsheet: Path | None) -> dict[str, Any] | None:
    """Characters and estimated tokens of the context files a column ran with, and its entry count.

    A learning method that collapses the cheatsheet (a full rewrite that drops
    knowledge) shows here as a smaller number than the seed's. Cheatsheet
    entries that differ only in id and task type (the full rewrite's
    per-task-type copies of one text) count once: a run sees one of them.
    """
    if prompts is None and cheatsheet is None:
        return None
    chars = tokens = entries = 0
    seen: set[str] = set()
    for root, is_cheatsheet in ((prompts, False), (cheatsheet, True)):
        if root is None or not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if not p.is_file() or p.suffix not in _CONTEXT_SUFFIXES or p.name == "README.md":
                continue
            if any(part.startswith(".") for part in p.relative_to(root).parts):
                continue
            text = p.read_text(encoding="utf-8", errors="replace")
            is_entry = is_cheatsheet and p.suffix in (".yaml", ".yml")
            if is_entry:
                data = to_plain(read_yaml(p))
                key = json.dumps({k: v for k, v in data.items() if k not in ("id", "task_type", "source")},
                                 sort_keys=True, default=str) if isinstance(data, dict) else text
                if key in seen:
                    continue
                seen.add(key)
            chars += len(text)
            tokens += count_tokens(text)
            entries += int(is_entry)
    return {"chars": chars, "tokens": tokens, "entries": entries}


def example_labels(dataset_dir: Path, key: str) -> dict[str, list[str]]:
    """Example name -> the list under ``key`` in its file (top level or ``metadata``); [] when absent."""
    from selfheal.evaluation.dataset import load_dataset_dir

    out: dict[str, list[str]] = {}
    for ex in load_dataset_dir(dataset_dir).examples:
        raw = read_yaml(ex.path)
        item = raw["examples"][ex.index] if ex.index is not None else raw
        value = (to_plain(item) or {}).get(key)
        if value is None:
            value = ex.metadata.get(key)
        if isinstance(value, str):
            value = [value]
        out[ex.name] = [str(v) for v in value] if isinstance(value, list) else []
    return out


# -- building -------------------------------------------------------------------------
class LearningTable(_Strict):
    agent: str
    split: str
    table: ColumnTable
    learning: dict[str, dict[str, Any]]          # column id -> cost
    context: dict[str, dict[str, Any] | None]    # column id -> size
    group_by: list[str]


def build_table(manifest_path: Path, *, group_by: Sequence[str] | None = None,
                evals_root: Path | None = None) -> LearningTable:
    """Load every column of a manifest and compare them against its reference column."""
    manifest, base = load_manifest(manifest_path)
    agent = agent_of(manifest, base)
    dataset_dir = (evals_root or ROOT / "evals") / (manifest.dataset or agent)
    columns: list[Column] = []
    learning: dict[str, dict[str, Any]] = {}
    context: dict[str, dict[str, Any] | None] = {}
    for spec in manifest.columns:
        label = spec.label or spec.id
        if spec.status == "not run":
            columns.append(Column(spec.id, label, None, spec.reason))
        else:
            assert spec.results is not None
            result = load_results(base / spec.results, spec.side)
            if result.split not in (manifest.split, "all"):
                raise SelfhealError(f"column {spec.id}: {spec.results} is the {result.split} split,"
                                    f" not {manifest.split}")
            columns.append(Column(spec.id, label, result))
        learning[spec.id] = learning_cost(spec.learning, base)
        context[spec.id] = context_size(base / spec.prompts if spec.prompts else None,
                                        base / spec.cheatsheet if spec.cheatsheet else None)
    keys = list(group_by if group_by is not None else manifest.group_by or [])
    labels: dict[str, dict[str, list[str]]] = {}
    if dataset_dir.is_dir():
        if not keys and group_by is None:
            found = example_labels(dataset_dir, "conventions")
            if any(found.values()):
                keys, labels["conventions"] = ["conventions"], found
        for key in keys:
            labels.setdefault(key, example_labels(dataset_dir, key))
    elif keys:
        raise SelfhealError(f"--group-by {', '.join(keys)}: no dataset at {dataset_dir}")

    def by(key: str) -> Callable[[ExampleResult], list[str]]:
        return lambda r: labels[key].get(r.name, [])

    table = compare_columns(columns, manifest.reference or manifest.columns[0].id, {k: by(k) for k in keys})
    return LearningTable(agent=agent, split=manifest.split, table=table, learning=learning,
                         context=context, group_by=keys)


# -- rendering ------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _num(x: float | int | None, fmt: str = "{:,.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def _secs(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.1f} s" if x < 120 else f"{x / 60:.1f} min" if x < 7200 else f"{x / 3600:.2f} h"


def _example_time(c: ColumnStats) -> str:
    """Wall time per test example; with the model's recorded generation time when a replay made the wall ~0."""
    wall = _secs(c.mean_latency_s)
    if c.mean_model_s is None or c.mean_latency_s is None or c.mean_latency_s >= c.mean_model_s / 2:
        return wall
    return f"{wall} (model {_secs(c.mean_model_s)} recorded)"


def to_markdown(t: LearningTable) -> str:
    ref = t.table.reference
    lines = [f"## Learning table: {t.agent} ({t.split} split)", "",
             f"Paired on the example name against `{ref}`. Examples without a verdict count as failures"
             " (column *no verdict*).", "",
             "| column | success | Wilson 95% CI | Δ vs " + ref + " | McNemar p | fail→pass | pass→fail"
             " | no verdict | learning tokens | learning time | learning calls | tokens / test ex"
             " | time / test ex | context (tokens, entries) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in t.table.columns:
        cost = t.learning.get(c.id) or {}
        size = t.context.get(c.id)
        ctx = "–" if not size else f"{size['tokens']:,} ({size['entries']})"
        if c.status != "ok":
            lines.append(f"| {c.label} | not run: {c.reason} | | | | | | | | | | | | {ctx} |")
            continue
        is_ref = c.id == ref
        delta = "–" if is_ref or c.delta_points is None else f"{c.delta_points:+.1f} pts"
        p = "–" if is_ref or c.mcnemar_p is None else f"{c.mcnemar_p:.3g}"
        ci = "–" if c.ci is None else f"[{_pct(c.ci.low)}, {_pct(c.ci.high)}]"
        lines.append(
            f"| {c.label} | {c.passed}/{c.n} ({_pct(c.rate)}) | {ci} | {delta} | {p}"
            f" | {'–' if is_ref else c.fail_to_pass} | {'–' if is_ref else c.pass_to_fail} | {c.no_verdict}"
            f" | {_num(cost.get('tokens'))} | {_secs(cost.get('wall_s'))} | {_num(cost.get('model_calls'))}"
            f" | {_num(c.mean_tokens)} | {_example_time(c)} | {ctx} |")
    ran = [c for c in t.table.columns if c.status == "ok"]
    for kind in ["task_type", *t.group_by]:
        rows = [g for g in t.table.groups if g.kind == kind]
        if not rows:
            continue
        lines += ["", f"### Success per {kind.replace('_', ' ')}", "",
                  f"| {kind} | " + " | ".join(c.label for c in ran) + " |",
                  "|---|" + "---|" * len(ran)]
        for g in rows:
            cells = [f"{g.cells[c.id].passed}/{g.cells[c.id].n}" if c.id in g.cells else "–" for c in ran]
            lines.append(f"| {g.group} | " + " | ".join(cells) + " |")
    notes = []
    for c in ran:
        if c.id == ref:
            continue
        if c.fail_to_pass_names or c.pass_to_fail_names:
            notes.append(f"- {c.label}: fail→pass {', '.join(c.fail_to_pass_names) or 'none'};"
                         f" pass→fail {', '.join(c.pass_to_fail_names) or 'none'}")
        if c.missing_here or c.only_here:
            notes.append(f"- {c.label}: not paired: {len(c.missing_here)} example(s) only in {ref},"
                         f" {len(c.only_here)} only here")
    for c in t.table.columns:
        note = (t.learning.get(c.id) or {}).get("note")
        if note:
            notes.append(f"- {c.label} (learning cost): {note}")
    if notes:
        lines += ["", "### Flips and notes", "", *notes]
    return "\n".join(lines) + "\n"


def to_json(t: LearningTable) -> str:
    return json.dumps(t.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


# -- a column's test run: live (recording) and offline (replaying) ---------------------------
def replay_column(manifest_path: Path, column_id: str, workdir: Path,
                  *, repo_root: Path = ROOT) -> tuple[ExperimentResult, ExperimentResult]:
    """(recorded, replayed): the column's examples re-evaluated offline from its frozen files and cache.

    The eval runs with ``cache_mode: replay`` on the column's cache, so no model
    and no network is used: a response missing from the cache is a cache miss.
    """
    manifest, base = load_manifest(manifest_path)
    spec = _column(manifest, column_id)
    if spec.status != "ok" or spec.results is None:
        raise SelfhealError(f"column {column_id}: no results to replay")
    recorded = load_results(base / spec.results, spec.side)
    replayed = _evaluate_column(manifest, base, spec, workdir, cache_mode="replay",
                                names=[r.name for r in recorded.results], repo_root=repo_root)
    return recorded, replayed


def run_column(manifest_path: Path, column_id: str, workdir: Path, *, cache_mode: str = "auto",
               repo_root: Path = ROOT) -> ExperimentResult:
    """Run the column's whole split live from its frozen files, recording into its cache; write ``results``.

    The same scratch repository and settings as :func:`replay_column`, so what
    is recorded here is exactly what the replay test asks the cache for. The
    results file is written once (atomically); an existing one is never
    overwritten: the test split runs once per reported column.
    """
    manifest, base = load_manifest(manifest_path)
    spec = _column(manifest, column_id)
    if spec.status != "ok" or spec.results is None:
        raise SelfhealError(f"column {column_id}: give it 'results' (the file this run writes) and no 'status'")
    target = base / spec.results
    if target.exists():
        raise SelfhealError(f"{target}: already recorded (the test split runs once per column)")
    result = _evaluate_column(manifest, base, spec, workdir, cache_mode=cache_mode, repo_root=repo_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, result.model_dump_json(indent=2) + "\n")
    return result


def _evaluate_column(manifest: Manifest, base: Path, spec: ColumnSpec, workdir: Path, *, cache_mode: str,
                     names: list[str] | None = None, repo_root: Path = ROOT) -> ExperimentResult:
    """Evaluate a column's frozen prompts and cheatsheet on the manifest's split in a scratch repository.

    ``workdir`` gets the frozen prompts and cheatsheet, the dataset (without
    caches and experiments) and selfheal.yaml, plus the column's overrides and
    ``model.cache_mode``/``cache_dir`` on the column's cache (``base``: the manifest's directory).
    """
    from selfheal.config import load_settings
    from selfheal.evaluation.evaluate import evaluate

    if not (spec.prompts and spec.cache):
        raise SelfhealError(f"column {spec.id}: a test run needs its frozen 'prompts' and its 'cache'")
    agent = agent_of(manifest, base)
    dataset = manifest.dataset or agent
    workdir = Path(workdir)
    shutil.copytree(base / spec.prompts, workdir / "prompts" / agent)
    (workdir / "cheatsheet" / agent).mkdir(parents=True, exist_ok=True)
    if spec.cheatsheet:
        shutil.copytree(base / spec.cheatsheet, workdir / "cheatsheet" / agent, dirs_exist_ok=True)
    shutil.copytree(repo_root / "evals" / dataset, workdir / "evals" / dataset,
                    ignore=shutil.ignore_patterns("replay*", "experiments"))
    shutil.copy(repo_root / "selfheal.yaml", workdir / "selfheal.yaml")
    overrides: dict[str, Any] = _merge(spec.overrides, {
        "agent": agent,
        "model": {"cache_mode": cache_mode, "cache_dir": str((base / spec.cache).resolve())},
    })
    overrides["model"].setdefault("provider", "local")
    settings = load_settings(workdir, env={}, overrides=overrides)
    out = evaluate(settings, dataset=dataset, split=manifest.split, names=names,
                   progress=cache_mode != "replay", save=False)
    return out.candidate


def _column(manifest: Manifest, column_id: str) -> ColumnSpec:
    spec = next((c for c in manifest.columns if c.id == column_id), None)
    if spec is None:
        raise SelfhealError(f"no column {column_id!r} (columns: {', '.join(c.id for c in manifest.columns)})")
    return spec


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path, nargs="?", help=f"a {MANIFEST} (default: every evals/*/experiments/"
                    f"learning/{MANIFEST})")
    ap.add_argument("--json", action="store_true", help="JSON instead of Markdown")
    ap.add_argument("--group-by", action="append", default=None, metavar="KEY",
                    help="a list-valued example key to group by (repeatable; default: conventions when present)")
    ap.add_argument("--output", type=Path, default=None, help="write to FILE (atomically) instead of stdout")
    ap.add_argument("--run", metavar="COLUMN", default=None,
                    help="run COLUMN's split live from its frozen files (the local model, recording into its"
                         " cache) and write its results file, instead of printing the table")
    args = ap.parse_args(argv)
    if args.run:
        return _run(args.manifest, args.run)
    manifests = [args.manifest] if args.manifest else sorted(ROOT.glob(f"evals/*/experiments/learning/{MANIFEST}"))
    if not manifests:
        print(f"no evals/*/experiments/learning/{MANIFEST} yet", file=sys.stderr)
        return 2
    try:
        tables = [build_table(m, group_by=args.group_by) for m in manifests]
    except SelfhealError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        text = (to_json(tables[0]) if len(tables) == 1 else
                json.dumps([t.model_dump(mode="json") for t in tables], indent=2, ensure_ascii=False) + "\n")
    else:
        text = "\n".join(to_markdown(t) for t in tables)
    if args.output:
        atomic_write_text(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _run(manifest: Path | None, column: str) -> int:
    import tempfile

    if manifest is None:
        print("error: --run needs the manifest", file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="selfheal-column-") as tmp:
            result = run_column(manifest, column, Path(tmp) / "repo")
    except SelfhealError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    passed = sum(1 for r in result.results if r.passed)
    print(f"{column}: {passed}/{len(result.results)} passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
