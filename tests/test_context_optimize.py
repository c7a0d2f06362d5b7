"""`selfheal optimize` (context): batch reflection, context deltas, vetting, dev selection, test gate, PR.

Scripted agent models succeed only when the system prompt holds the lesson the
scripted Curator adds, so a variant that carries it really wins on dev and test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.eval_fixtures import AgentScript, make_repo
from helpers.gitrepo import git, isolate_git
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from selfheal.config import load_settings
from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.batch_reflect import RunEvidence, batch_prompt, build_batches
from selfheal.optimize.context_opt import optimize_context
from selfheal.optimize.digest import RunDigest
from selfheal.yamlio import read_yaml

REPO = Path(__file__).resolve().parents[1]
LESSON = "Before answering, read the logs for the exact error and act on the measured need."


def _system(messages: list[BaseMessage]) -> str:
    return next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")


class LessonSensitive(AgentScript):
    """Fixes a scenario when the prompt holds LESSON (or the scenario is in ``always``), else the wrong fix."""

    def __init__(self, always: set[str], never: frozenset[str] = frozenset()) -> None:
        super().__init__(default="wrong")
        self.always = always
        self.never = never

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        name = self._name(messages)
        fixed = name not in self.never and (name in self.always or LESSON in _system(messages))
        self.behaviour[name] = "fix" if fixed else "wrong"
        return super().__call__(messages)


class Role:
    """A scripted learning role: records every prompt, replies from a list (the last one repeats)."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        self.prompts.append("\n".join(str(m.content) for m in messages))
        reply = self.replies[min(len(self.prompts) - 1, len(self.replies) - 1)]
        return AIMessage(content=json.dumps(reply))

    def model(self) -> ScriptedChatModel:
        return ScriptedChatModel([self], repeat=True, model_name="scripted-role")


REFLECTION = {"insights": [{"task_type": "lambda_timeout", "diagnosis": "the failed run guessed",
                            "lesson": "read the logs first", "runs": []}], "entry_tags": {}}


def add_lesson(**extra: Any) -> dict[str, Any]:
    return {"context_operations": [{"op": "add_instruction", "text": LESSON, "reason": "failed runs guessed"}],
            "cheatsheet_operations": [], **extra}


NOOP = {"context_operations": [{"op": "add_instruction", "text": "Keep answers short and name the function.",
                                "reason": "style"}], "cheatsheet_operations": []}


# -- batches: contrastive pairs and ground truth ------------------------------------------


def _digest(run_id: str, task_type: str, success: bool) -> RunDigest:
    return RunDigest(run_id=run_id, task=f"task {run_id}", task_type=task_type, success=success)


def test_contrastive_pairs_are_per_task_type_and_ground_truth_only_where_known() -> None:
    evidence = [
        RunEvidence(_digest("f-timeout", "timeout", False), "a", "success: the timeout is raised"),
        RunEvidence(_digest("s-timeout", "timeout", True), "b", None),
        RunEvidence(_digest("s-memory", "memory", True), "c", None),
        RunEvidence(_digest("f-memory", "memory", False), "d", None),
        RunEvidence(_digest("f-cost", "cost", False), "e", None),  # no success of its type
    ]
    (batch,) = build_batches(evidence, batch_size=8)
    assert {(f.run_id, s.run_id) for f, s in batch.pairs} == {("f-timeout", "s-timeout"), ("f-memory", "s-memory")}
    assert [f.run_id for f in batch.failures] == ["f-cost"]
    prompt = batch_prompt(batch)
    pair = prompt.split("=== Pair")[2] if "timeout" in prompt.split("=== Pair")[2] else prompt.split("=== Pair")[1]
    assert "FAILED run f-timeout" in pair and "SUCCESSFUL run s-timeout" in pair  # side by side, same type
    assert "GROUND TRUTH:\nsuccess: the timeout is raised" in prompt
    assert prompt.count("GROUND TRUTH") == 1
    assert "environment feedback only" in prompt
    assert "- cost: 0/1 succeeded" in prompt and "- memory: 1/2 succeeded" in prompt
    small = build_batches(evidence, batch_size=1)
    assert len(small) == 3 and all(len(b.pairs) + len(b.failures) == 1 for b in small)


# -- lambda_ops: end to end ------------------------------------------------------------------

TRAIN = {"timeout_pdf_renderer": "train", "timeout_nightly_etl": "train", "lambda_timeout": "train"}
DEV = {"timeout_address_validator": "dev"}
TEST = {n: "test" for n in ["timeout_shipping_quotes", "memory_csv_importer", "memory_java_heap",
                            "memory_frame_extractor", "memory_podcast_encoder", "cold_start_login_api"]}


@pytest.fixture
def lambda_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_git(monkeypatch, tmp_path)
    root = make_repo(tmp_path / "repo", {**TRAIN, **DEV, **TEST})
    (root / ".gitignore").write_text(".selfheal/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "seed")
    monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "none")
    return root


def test_lambda_ops_best_dev_variant_early_stops_passes_the_test_gate_and_is_proposed(
    lambda_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.openai_stub import OpenAIStub

    settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"})
    # lambda_timeout fails whatever the context: epoch 2 (train re-run with v1) still has something to learn.
    script = LessonSensitive(always={"timeout_pdf_renderer"}, never=frozenset({"lambda_timeout"}))
    curator = Role(add_lesson(), NOOP)
    with OpenAIStub() as stub:  # the reflector runs on its own (stub) endpoint
        for _ in range(2):
            stub.reply_tool_calls([("batch_reflection", REFLECTION)])
        settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"}, overrides={
            "model": {"roles": {"reflector": {"name": "big-critic", "base_url": stub.url, "api_key": "sk-test"}}},
            "optimize": {"patience": 1},
        })
        report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([script], repeat=True),
                                  curator_model=curator.model(), publish=True)
        reflector_prompts = [json.dumps(b) for b in stub.bodies]
    assert report.roles["reflector"].startswith("openai:big-critic@" + stub.url.rstrip("/"))
    # The reflector saw the failed and the successful timeout run side by side, with the scenario's ground truth.
    assert "FAILED run" in reflector_prompts[0] and "SUCCESSFUL run" in reflector_prompts[0]
    assert "GROUND TRUTH" in reflector_prompts[0] and "success:" in reflector_prompts[0]
    # Epoch 2 reflected on the train split re-run with v1: only lambda_timeout still failed.
    assert reflector_prompts[1].count("FAILED run") == 1 and report.evidence_runs == 6
    assert [(v.name, v.dev_passed, v.status) for v in report.variants] == [("v1", 1, "best"), ("v2", 1, "scored")]
    assert report.baseline_dev == 0.0 and report.best == "v1"
    assert report.early_stop and "did not improve the dev score" in report.early_stop
    assert report.proposed and not report.reasons, report.reasons
    assert report.comparison.overall.fail_to_pass == 6
    (path,) = report.files
    assert path == "prompts/lambda_ops/context.yaml"
    assert LESSON in report.files[path] and "learned from runs" in report.files[path]
    assert any(line.startswith("ADD instruction") and "runs:" in line for line in report.changes)
    assert report.publish is not None and report.publish.branch.startswith("selfheal/optimize/")
    body = report.markdown
    assert "big-critic" in body and "### Cost" in body and "| reflect |" in body and "| select |" in body
    assert {p.phase for p in report.cost.rows()} >= {"collect", "reflect", "curate", "select", "confirm", "total"}
    # The role's model identity is on its traced calls.
    from selfheal.tracing.store import LocalTraceStore

    store = LocalTraceStore.from_settings(settings)
    try:
        roles = [r for r in store.list_runs(settings.tracing.project, is_root=True, limit=500)
                 if (r.extra or {}).get("metadata", {}).get("selfheal_role") == "reflector"]
    finally:
        store.close()
    assert roles and roles[0].extra["metadata"]["role_model"].startswith("openai:big-critic@")
    # The working tree is untouched: the change lives on the branch.
    assert LESSON not in (lambda_repo / path).read_text()


def test_a_collapsing_variant_is_rejected_with_its_reason_and_nothing_is_proposed(lambda_repo: Path) -> None:
    settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"})
    ids = [i["id"] for i in read_yaml(lambda_repo / "prompts" / "lambda_ops" / "context.yaml")["instructions"]]
    ex_ids = [e["id"] for e in read_yaml(lambda_repo / "prompts" / "lambda_ops" / "context.yaml")["examples"]]
    collapse = {"context_operations": [{"op": "remove_instruction", "id": i, "reason": "shorter"} for i in ids]
                + [{"op": "remove_example", "id": e, "reason": "shorter"} for e in ex_ids]
                + [{"op": "add_instruction", "text": LESSON, "reason": "all in one"}],
                "cheatsheet_operations": []}
    script = LessonSensitive(always={"timeout_pdf_renderer"})
    report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([script], repeat=True),
                              reflector_model=Role(REFLECTION).model(), curator_model=Role(collapse).model(),
                              epochs=1, apply=True)
    (v,) = report.variants
    assert v.status == "rejected" and v.dev_score is None  # never scored
    assert any(p.startswith("collapse:") and "optimize.max_shrink" in p for p in v.problems), v.problems
    assert any(p.startswith("rewrite:") for p in v.problems)
    assert not report.proposed and not report.applied
    assert "no variant beat the current context" in report.reasons[0]
    assert LESSON not in (lambda_repo / "prompts" / "lambda_ops" / "context.yaml").read_text()


def test_an_epoch_that_proposes_the_same_deltas_again_is_not_scored_twice(lambda_repo: Path) -> None:
    """At temperature 0 an epoch that changed nothing re-reflects the same runs the same way: no second dev run."""
    settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"},
                             overrides={"optimize": {"patience": 3}})
    script = LessonSensitive(always={"timeout_pdf_renderer"})
    report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([script], repeat=True),
                              reflector_model=Role(REFLECTION).model(), curator_model=Role(NOOP).model(), epochs=2)
    # dev_n 0: v2 was never scored
    assert [(v.name, v.epoch, v.dev_n) for v in report.variants][:2] == [("v1", 1, 1), ("v2", 2, 0)]
    assert report.variants[1].status == "rejected"
    assert report.variants[1].problems == ["the same deltas as v1, already scored on dev"]
    assert sum(p.runs for p in report.cost.rows() if p.phase == "select") == 2  # the current context, v1
    assert not report.proposed


def test_when_every_reflection_fails_the_report_says_so_not_that_no_variant_won(lambda_repo: Path) -> None:
    """A Reflector that times out on every batch is a model problem, named as such (not a verdict on the method)."""
    from selfheal.errors import ModelError

    def timing_out(messages: list[BaseMessage]) -> AIMessage:
        raise ModelError("the local model did not answer within 180 s (model.timeout_s)")

    settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"})
    script = LessonSensitive(always={"timeout_pdf_renderer"})
    report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([script], repeat=True),
                              reflector_model=ScriptedChatModel([timing_out], repeat=True),
                              curator_model=Role(REFLECTION).model(), epochs=1)
    assert not report.proposed and not report.variants
    (reason,) = report.reasons
    assert reason.startswith("no variant to score:") and "did not answer within 180 s" in reason, reason
    assert "### Problems on the way" in report.markdown and "reflection failed" in report.markdown


# -- sql_analyst: ground truth (gold SQL + result), not significant -> says why ----------------

SQL_TRAIN = ["customers_active_buyers_fy2025", "customers_by_region"]
SQL_DEV = ["customers_count"]
SQL_TEST = ["customers_by_segment", "customers_top3_spenders"]
NAIVE = "SELECT COUNT(*) FROM customers"


class SqlAgent:
    """Answers with the gold query when the prompt holds LESSON (or the question is in ``always``)."""

    def __init__(self, root: Path, always: set[str]) -> None:
        self.by_task = {}
        for p in (root / "evals" / "sql_analyst" / "scenarios").glob("*.yaml"):
            data = read_yaml(p)
            self.by_task[" ".join(str(data["task"]).split())] = (data["name"], str(data["gold_sql"]))
        self.always = always

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        task = next((" ".join(str(m.content).split()) for m in messages if isinstance(m, HumanMessage)), "")
        name, gold = self.by_task.get(task, ("?", NAIVE))
        if any(isinstance(m, ToolMessage) for m in messages):
            return AIMessage(content="Here is the answer.\nUSED: none")
        query = gold if (name in self.always or LESSON in _system(messages)) else NAIVE
        return AIMessage(content="", tool_calls=[{"name": "run_sql", "args": {"query": query}, "id": "c1"}])


@pytest.fixture
def sql_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("sql_analyst")
    root = tmp_path / "analytics"
    scen = root / "evals" / "sql_analyst" / "scenarios"
    scen.mkdir(parents=True)
    shutil.copytree(REPO / "prompts" / "sql_analyst", root / "prompts" / "sql_analyst")
    shutil.copytree(REPO / "cheatsheet" / "sql_analyst", root / "cheatsheet" / "sql_analyst")
    shutil.copy(REPO / "evals" / "sql_analyst" / "dataset.yaml", root / "evals" / "sql_analyst" / "dataset.yaml")
    for names, split in ((SQL_TRAIN, "train"), (SQL_DEV, "dev"), (SQL_TEST, "test")):
        for name in names:
            text = (REPO / "evals" / "sql_analyst" / "scenarios" / f"{name}.yaml").read_text()
            for s in ("train", "dev", "test"):
                text = text.replace(f"split: {s}", f"split: {split}")
            (scen / f"{name}.yaml").write_text(text)
    (root / "selfheal.yaml").write_text("agent: sql_analyst\nembeddings: {provider: none}\n")
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    return root


def test_sql_analyst_reflector_sees_gold_sql_and_result_and_an_insignificant_win_is_not_proposed(
    sql_repo: Path,
) -> None:
    settings = load_settings(sql_repo, env={})
    agent = SqlAgent(sql_repo, always={"customers_by_region"})
    reflector = Role({"insights": [{"task_type": "customers", "diagnosis": "conventions missed",
                                    "lesson": "apply the conventions", "runs": []}], "entry_tags": {}})
    report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([agent], repeat=True),
                              reflector_model=reflector.model(), curator_model=Role(add_lesson(cheatsheet_operations=[
                                  {"op": "ADD", "section": "failure_patterns", "task_type": "customers",
                                   "fields": {"pattern": "Counting customers without the conventions",
                                              "lesson": "Exclude cancelled orders and internal test accounts."},
                                   "reason": "the failed run counted everything"},
                                  {"op": "UPDATE", "id": "heur-never-shown", "fields": {"rule": "x"}, "reason": "?"},
                              ])).model(),
                              epochs=1, apply=True, keep_dir=sql_repo / "kept")
    prompt = reflector.prompts[0]
    gold = str(read_yaml(sql_repo / "evals" / "sql_analyst" / "scenarios" / f"{SQL_TRAIN[0]}.yaml")["gold_sql"])
    assert "GROUND TRUTH" in prompt and "gold SQL:" in prompt and gold.split()[0] in prompt
    assert "gold result:" in prompt
    assert "FAILED run" in prompt and "SUCCESSFUL run" in prompt  # both are customers questions
    assert report.best == "v1" and report.variants[0].dev_passed == 1
    assert report.comparison is not None and report.comparison.overall.fail_to_pass == 2
    assert not report.proposed and not report.applied
    assert any(r.startswith("not significantly better on test") and "McNemar p" in r for r in report.reasons)
    assert "Before answering" not in (sql_repo / "prompts" / "sql_analyst" / "context.yaml").read_text()
    # The variant held a context delta and a cheatsheet delta, each with the runs behind it.
    (entry_path,) = [p for p in report.files if p.startswith("cheatsheet/sql_analyst/failure_patterns/")]
    failed_run = next(v for v in report.variants if v.name == "v1").runs[0]
    assert failed_run in report.files[entry_path] and "Exclude cancelled orders" in report.files[entry_path]
    assert any("heur-never-shown" in e and "only change entries it was shown" in e for e in report.errors)
    assert not (sql_repo / entry_path).exists()
    # --keep: the best dev variant is kept for review although the test split did not confirm it
    kept = sql_repo / "kept" / entry_path
    assert kept.is_file() and "Exclude cancelled orders" in kept.read_text()
    assert (sql_repo / "kept" / "prompts" / "sql_analyst" / "context.yaml").is_file()


# -- the command -------------------------------------------------------------------------------


def test_cli_optimizes_the_context_by_default_and_says_why_nothing_was_proposed(
    lambda_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import selfheal.evaluation.runner as runner
    import selfheal.optimize.roles as roles
    from selfheal.cli.main import main

    script = LessonSensitive(always={"timeout_pdf_renderer"})
    monkeypatch.setattr(runner, "_default_factory", lambda settings: lambda: ScriptedChatModel([script], repeat=True))
    shrink = {"context_operations": [{"op": "remove_instruction", "id": i["id"], "reason": "shorter"}
                                     for i in read_yaml(lambda_repo / "prompts" / "lambda_ops" / "context.yaml")
                                     ["instructions"]], "cheatsheet_operations": []}
    models = {"reflector": Role(REFLECTION).model(), "curator": Role(shrink).model()}
    monkeypatch.setattr(roles, "make_role_model", lambda settings, role: models[role])
    with pytest.raises(SystemExit) as info:
        main(["-C", str(lambda_repo), "optimize", "--epochs", "1", "--pr"])
    out, err = capsys.readouterr()
    assert info.value.code in (0, None), err
    assert "## Context optimization" in out and "| v1 | current | 1 | - | rejected: " in out
    assert "nothing proposed: no variant beat the current context on the dev split" in err
    assert "### Cost" in out
    assert git(lambda_repo, "branch", "--list", "selfheal/*").strip() == ""  # no branch was opened


# -- vetting, roles, stored evidence: the small rules ---------------------------------------


def test_dropping_an_item_with_strong_helpful_evidence_is_a_collapse_reason() -> None:
    from selfheal.optimize.variants import ContextSize, collapse_reasons

    before = ContextSize(tokens=1000, instructions=5, entries=10, examples=2)
    after = ContextSize(tokens=960, instructions=5, entries=9, examples=2)
    reasons = collapse_reasons(before, after, removed=["heur-proven"], changed=[],
                               evidence={"heur-proven": (4, 1), "heur-noise": (1, 0)}, max_shrink=0.3,
                               max_rewrite=0.5, strong_helpful=3, kinds={"heur-proven": "entries"})
    assert reasons == ["drops heur-proven, which has strong helpful evidence (4 helpful, 1 harmful marks)"]
    assert collapse_reasons(before, after, removed=["heur-noise"], changed=[], evidence={"heur-noise": (1, 0)},
                            max_shrink=0.3, max_rewrite=0.5, strong_helpful=3) == []
    tiny = ContextSize(tokens=600, instructions=5, entries=10, examples=2)
    (why,) = collapse_reasons(before, tiny, removed=[], changed=[], evidence={}, max_shrink=0.3, max_rewrite=0.5,
                              strong_helpful=3)
    assert why.startswith("collapse: the rendered context shrinks from 1000 to 600 tokens (40%)")


def test_a_role_model_is_the_agents_model_with_the_role_keys_laid_over(tmp_path: Path) -> None:
    from selfheal.optimize.roles import role_identity, role_settings

    (tmp_path / "selfheal.yaml").write_text(
        "model: {provider: local, max_tokens: 300, roles: {curator: {name: gpt-4o, base_url: 'http://127.0.0.1:9/v1',"
        " api_key: sk-x}}}\n"
    )
    settings = load_settings(tmp_path, env={})
    assert role_settings(settings, "reflector") is settings  # no role section: the agent's model
    cur = role_settings(settings, "curator").model
    assert (cur.provider, cur.name, cur.base_url, cur.max_tokens) == ("openai", "gpt-4o", "http://127.0.0.1:9/v1", 300)
    assert role_identity(settings, "curator") == "openai:gpt-4o@http://127.0.0.1:9/v1"
    assert role_identity(settings, "reflector").startswith("local:")


def test_a_learning_role_may_wait_longer_than_an_agent_step(tmp_path: Path) -> None:
    """The same local model as the agent, with the longer timeout its batch prompts need."""
    from selfheal.optimize.roles import role_identity, role_settings

    (tmp_path / "selfheal.yaml").write_text("model: {provider: local, timeout_s: 180, roles: {reflector: {timeout_s: 900}}}\n")
    settings = load_settings(tmp_path, env={})
    assert role_settings(settings, "reflector").model.timeout_s == 900
    assert role_settings(settings, "curator").model.timeout_s == settings.model.timeout_s == 180
    assert role_identity(settings, "reflector") == role_identity(settings, "curator")  # same model, same cache


def test_stored_runs_never_include_held_out_examples_or_the_optimizers_own_runs(lambda_repo: Path) -> None:
    from datetime import UTC, datetime

    from selfheal.evaluation.dataset import load_dataset
    from selfheal.optimize.context_opt import stored_runs
    from selfheal.tracing.schema import RunRecord
    from selfheal.tracing.store import LocalTraceStore

    settings = load_settings(lambda_repo, env={"SELFHEAL_EMBEDDINGS_PROVIDER": "none"})
    ds = load_dataset(settings)
    store = LocalTraceStore.from_settings(settings)
    import uuid

    def root(md: dict[str, Any]) -> RunRecord:
        rid = uuid.uuid4()
        return RunRecord(id=rid, name="agent", run_type="chain", start_time=datetime.now(UTC), trace_id=rid,
                         dotted_order=f"20260101T000000000000Z{rid}", extra={"metadata": md},
                         session_id=None)

    runs = {"prod": root({"success": False, "task_type": "lambda_timeout"}),
            "train": root({"success": True, "scenario": "timeout_nightly_etl"}),
            "test": root({"success": False, "scenario": "timeout_shipping_quotes"}),
            "own": root({"success": False, "scenario": "timeout_nightly_etl", "optimize_run": "x"}),
            "no-verdict": root({"task_type": "lambda_timeout"})}
    try:
        store.ensure_project(settings.tracing.project)
        store.write_runs([r.model_copy(update={"session_id": store.get_project(settings.tracing.project).id})
                          for r in runs.values()])
        got = stored_runs(store, settings, ds, since=None, train_split="train", exclude=set())
    finally:
        store.close()
    assert sorted(got, key=str) == sorted([(str(runs["prod"].id), None),
                                           (str(runs["train"].id), "timeout_nightly_etl")], key=str)


def test_sql_analyst_when_the_curator_changes_nothing_the_reflectors_lesson_is_proposed_as_an_entry(
    sql_repo: Path,
) -> None:
    from selfheal.context.loader import load_context

    settings = load_settings(sql_repo, env={})
    first = load_context(settings.prompts_dir).instructions[0]
    agent = SqlAgent(sql_repo, always=set())
    reflector = Role({"insights": [{"task_type": "customers", "diagnosis": "counted test accounts too",
                                    "lesson": LESSON, "runs": []}], "entry_tags": {}})
    echo = Role({"context_operations": [{"op": "update_instruction", "id": first.id, "text": first.text,
                                         "reason": "re-emitted as shown"}], "cheatsheet_operations": []})
    report = optimize_context(settings, model_factory=lambda: ScriptedChatModel([agent], repeat=True),
                              reflector_model=reflector.model(), curator_model=echo.model(), epochs=1,
                              keep_dir=sql_repo / "kept")
    v1 = report.variants[0]
    assert v1.status != "rejected", v1.problems
    assert any("changed nothing" in e and "lessons were proposed as entries" in e for e in report.errors)
    assert [line.split(" ")[0] for line in v1.lines] == ["ADD"] and "failure_patterns" in v1.lines[0]
    assert v1.dev_passed > 0 and report.best == "v1"
    kept = [p for p in (sql_repo / "kept" / "cheatsheet" / "sql_analyst" / "failure_patterns").glob("*.yaml")
            if LESSON in p.read_text()]
    assert kept  # the kept variant holds the lesson as an entry, for review
