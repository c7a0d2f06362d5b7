"""Shared fixtures of the evaluation-core tests: temp repos with datasets, a scripted agent, a LangSmith dataset stub.

``make_repo`` copies the agent's files into a temp dir and builds
``evals/lambda_ops/`` there from copies of the repository's scenarios (with
``split:`` set by the test), so tests never depend on the repository's own
dataset. ``agent_model`` is a :class:`ScriptedChatModel` that plays each
scenario's playbook ("fix", "wrong") or misbehaves on purpose ("hang",
"transient_once", "permanent") depending on the task it is given.
:class:`LangSmithDatasetStub` adds LangSmith's dataset and example endpoints
(and experiment sessions with ``reference_dataset_id``) to the tracing stub.
"""

from __future__ import annotations

import json
import shutil
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from selfheal.errors import ModelError
from selfheal.models.fakes import ScriptedChatModel
from selfheal.yamlio import read_yaml, write_yaml
from helpers.lambda_ops import PLAYBOOK
from helpers.langsmith_stub import LangSmithStub, _Handler

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "evals" / "lambda_ops" / "scenarios"

DATASET_YAML = """\
# test dataset
name: lambda_ops
description: test dataset
agent: lambda_ops
examples: [scenarios/*.yaml, examples/*.yaml]
evaluators:
  weights: {state_checks: 3, output: 1, tool_calls: 1, limits: 1, judge: 1}
  pass_threshold: 0.75
  limits: {max_steps: 8, max_total_tokens: 60000, max_latency_s: 300}
"""


def make_repo(
    root: Path,
    splits: dict[str, str],
    *,
    dataset_yaml: str = DATASET_YAML,
    expect: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """A repo at ``root`` whose dataset holds copies of these scenarios with these splits."""
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    ds = root / "evals" / "lambda_ops"
    (ds / "scenarios").mkdir(parents=True)
    (ds / "dataset.yaml").write_text(dataset_yaml)
    for name, split in splits.items():
        data = read_yaml(SCENARIOS / f"{name}.yaml")
        data["split"] = split
        data.pop("id", None)
        if expect and name in expect:
            data["expect"] = expect[name]
        else:
            data.pop("expect", None)
        write_yaml(ds / "scenarios" / f"{name}.yaml", data)
    return root


def task_names() -> dict[str, str]:
    """Scenario task text -> scenario name (how the scripted agent knows where it is)."""
    out = {}
    for path in SCENARIOS.glob("*.yaml"):
        data = read_yaml(path)
        out[" ".join(str(data["task"]).split())] = str(data["name"])
    return out


class AgentScript:
    """Per-scenario behaviour of the scripted agent, shared by every model it makes."""

    def __init__(self, behaviour: dict[str, str] | None = None, default: str = "fix", answer: str = "") -> None:
        self.behaviour = dict(behaviour or {})
        self.default = default
        self.answer = answer
        self.release = threading.Event()  # lets "hang" runs finish at teardown
        self._lock = threading.Lock()
        self.failures: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._tasks = task_names()

    def _name(self, messages: list[BaseMessage]) -> str:
        task = next((str(m.content) for m in messages if isinstance(m, HumanMessage)), "")
        return self._tasks.get(" ".join(task.split()), task)

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        name = self._name(messages)
        mode = self.behaviour.get(name, self.default)
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        if mode == "hang":
            self.release.wait(30)
            return AIMessage(content="too late")
        if mode == "permanent":
            raise ModelError("model endpoint http://127.0.0.1:9/v1 rejected the API key (HTTP 401): bad key")
        if mode == "transient_once":
            with self._lock:
                seen = self.failures.get(name, 0)
                self.failures[name] = seen + 1
            if seen == 0:
                raise ModelError("model endpoint http://127.0.0.1:9/v1 timed out: read timed out")
            mode = "fix"
        done = any(isinstance(m, ToolMessage) for m in messages)
        steps = PLAYBOOK.get(name, {}).get(mode, []) if mode in ("fix", "wrong") else []
        if not done and steps:
            return AIMessage(
                content="",
                tool_calls=[{"name": t, "args": a, "id": f"c-{uuid.uuid4().hex[:8]}"} for t, a in steps],
            )
        if not done and mode == "noop":
            return AIMessage(
                content="", tool_calls=[{"name": "list_functions", "args": {}, "id": "c-list"}]
            )
        return AIMessage(content=self.answer or f"Done with {name}: applied the {mode} change.")


def agent_model(script: AgentScript, latency_s: float = 0.0) -> ScriptedChatModel:
    return ScriptedChatModel([script], repeat=True, latency_s=latency_s)


def model_factory(script: AgentScript, latency_s: float = 0.0) -> Callable[[], ScriptedChatModel]:
    return lambda: agent_model(script, latency_s)


# -- LangSmith datasets ----------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat()


class _DatasetHandler(_Handler):
    """The tracing stub's routes plus datasets, examples and experiment sessions."""

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        stub: LangSmithDatasetStub = self.stub  # type: ignore[assignment]
        parts = path.strip("/").split("/")
        if path == "/datasets" and method == "POST":
            data = json.loads(body)
            with stub._lock:
                if any(d["name"] == data["name"] for d in stub.datasets.values()):
                    return 409, {"detail": "dataset exists"}
                ds = {
                    "id": str(data.get("id") or uuid.uuid4()),
                    "name": data["name"],
                    "description": data.get("description"),
                    "data_type": data.get("data_type") or "kv",
                    "created_at": _now(),
                    "modified_at": _now(),
                    "tenant_id": stub.tenant_id,
                    "metadata": (data.get("extra") or {}).get("metadata") or data.get("metadata"),
                }
                stub.datasets[ds["id"]] = ds
            return 200, ds
        if path == "/datasets" and method == "GET":
            names = query.get("name") or []
            with stub._lock:
                found = [d for d in stub.datasets.values() if not names or d["name"] in names]
            return 200, found
        if len(parts) == 2 and parts[0] == "datasets" and method == "GET":
            ds = stub.datasets.get(parts[1])
            return (200, ds) if ds else (404, {"detail": "dataset not found"})
        if path == "/examples/bulk" and method == "POST":
            items = json.loads(body)
            with stub._lock:
                for item in items:
                    if str(item["id"]) in stub.examples:
                        return 409, {"detail": f"example {item['id']} exists"}
                out = []
                for item in items:
                    ex = _example_record(item, None)
                    stub.examples[ex["id"]] = ex
                    out.append(ex)
            return 200, out
        if path == "/examples/bulk" and method == "PATCH":
            items = json.loads(body)
            with stub._lock:
                for item in items:
                    old = stub.examples.get(str(item["id"]))
                    if old is None:
                        return 404, {"detail": f"example {item['id']} not found"}
                    stub.examples[old["id"]] = _example_record(item, old)
            return 200, {"message": f"{len(items)} examples updated"}
        if path == "/examples" and method == "POST":
            item = json.loads(body)
            with stub._lock:
                if str(item.get("id")) in stub.examples:
                    return 409, {"detail": "example exists"}
                ex = _example_record({**item, "id": item.get("id") or str(uuid.uuid4())}, None)
                stub.examples[ex["id"]] = ex
            return 200, ex
        if len(parts) == 2 and parts[0] == "examples" and parts[1] != "bulk":
            with stub._lock:
                old = stub.examples.get(parts[1])
                if old is None:
                    return 404, {"detail": "example not found"}
                if method == "PATCH":
                    stub.examples[parts[1]] = _example_record({**json.loads(body), "id": parts[1]}, old)
                    return 200, {"message": "example updated"}
                if method == "GET":
                    return 200, old
        if path == "/examples" and method == "GET":
            dataset = (query.get("dataset") or [None])[0]
            offset = int((query.get("offset") or ["0"])[0])
            limit = int((query.get("limit") or ["100"])[0])
            with stub._lock:
                found = [e for e in stub.examples.values() if dataset is None or e["dataset_id"] == dataset]
            return 200, found[offset : offset + limit]
        if path == "/sessions" and method == "POST":
            data = json.loads(body)
            with stub._lock:
                if data["name"] in stub.sessions:
                    return 409, {"detail": "session exists"}
                session = stub._ensure_session(data["name"])
                session["reference_dataset_id"] = data.get("reference_dataset_id")
                session["extra"] = data.get("extra") or {}
            return 200, session
        return super()._route(method, path, query, body)


def _example_record(item: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """Store an example as LangSmith does: the split goes into ``metadata.dataset_split``."""
    ex = dict(old or {"created_at": _now(), "metadata": {}, "outputs": {}, "inputs": {}})
    ex["id"] = str(item["id"])
    ex["dataset_id"] = str(item.get("dataset_id") or ex.get("dataset_id"))
    ex["modified_at"] = _now()
    for key in ("inputs", "metadata"):
        if item.get(key) is not None:
            ex[key] = item[key]
    outputs = item.get("outputs", item.get("reference_outputs"))
    if outputs is not None:
        ex["outputs"] = outputs
    split = item.get("split")
    if split is not None:
        ex["metadata"] = {**(ex.get("metadata") or {}), "dataset_split": [split] if isinstance(split, str) else split}
    return ex


class LangSmithDatasetStub(LangSmithStub):
    """:class:`LangSmithStub` with datasets (``/datasets``), examples (``/examples``) and experiments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._server.RequestHandlerClass = _DatasetHandler
        self.datasets: dict[str, dict[str, Any]] = {}
        self.examples: dict[str, dict[str, Any]] = {}

    def dataset_examples(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            ids = [d["id"] for d in self.datasets.values() if d["name"] == name]
            return [e for e in self.examples.values() if e["dataset_id"] in ids]


def langsmith_env(stub: LangSmithStub) -> dict[str, str]:
    """Environment that switches LangSmith on against the stub."""
    return {
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_API_KEY": "ls-test-key",
        "LANGSMITH_ENDPOINT": stub.url,
    }


__all__ = [
    "AgentScript",
    "LangSmithDatasetStub",
    "agent_model",
    "langsmith_env",
    "make_repo",
    "model_factory",
]
