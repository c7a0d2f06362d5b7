"""Planted secrets are nowhere after every command that writes or sends (issue 14, item 1).

The corpus (``helpers.secrets_corpus.CORPUS``: 72 fake secrets of 18 kinds, with
and without their usual prefixes) is planted a third each in the task, in the
scenario's log events (tool results the model reads) and in feedback comments
and corrections; the model's output and its tool arguments repeat them; the
process environment holds more (model key, a database URL). With
LangChain's env-var tracing switched on (``LANGCHAIN_TRACING_V2``,
``LANGSMITH_TRACING``) and LangSmith pointed at the loopback stub, every command
that writes or sends runs as a real ``selfheal`` process: run, run --json,
feedback, curate --dry-run, curate, eval, optimize, traces sync, traces show.
Then every byte under the repository and state dirs (SQLite files read raw:
traces, checkpoints, outbox; the response cache; cheatsheet files; reports),
every payload the LangSmith stub received and every stdout/stderr is searched
for every secret: zero hits. That each secret was really in play is checked on
what the model stub received.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.auto_model_stub import AutoModelStub
from helpers.langsmith_stub import LangSmithStub, _Handler
from helpers.reliability import record
from helpers.secrets_corpus import CORPUS, KINDS, Secret
from ruamel.yaml import YAML

from selfheal.config import load_settings
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "evals" / "lambda_ops" / "scenarios" / "lambda_timeout.yaml"
MARK = "PLANTEDLINE"

IN_TASK = CORPUS[0::3]
IN_LOGS = CORPUS[1::3]
IN_FEEDBACK = CORPUS[2::3]
LANGSMITH_KEY = "lsv2_pt_" + "7c1e9d3b5a2f4e6c8b0d1a2b3c4d5e6f" + "_0a1b2c3d4e"


class RecordingLangSmithStub(LangSmithStub):
    """The LangSmith stub, keeping every request body it received (decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []
        stub = self

        class Handler(_Handler):
            def _body(self) -> bytes:
                data = super()._body()
                with stub._lock:
                    stub.bodies.append(self.path.encode() + b"\n" + data)
                return data

        self._server.RequestHandlerClass = Handler


def _scenario(name: str, split: str, task: str) -> dict[str, Any]:
    yaml = YAML(typ="safe")
    data = yaml.load(SCENARIO.read_text())
    data.update(name=name, split=split, task=task)
    data["functions"][0]["env"] = {
        "DATABASE_URL": IN_LOGS[14].text,
        "STRIPE_KEY": IN_TASK[9].text if IN_TASK[9].kind == "stripe_api_key" else IN_LOGS[9].text,
    }
    events = data["logs"][0]["events"]
    for s in IN_LOGS:  # one secret per line: log lines are cut at 240 characters
        events.append({"message": f"[ERROR] {MARK} {s.text}", "hours_ago": 2})
    return data


def _repo(root: Path) -> Path:
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    scenarios = root / "evals" / "lambda_ops" / "scenarios"
    scenarios.mkdir(parents=True)
    shutil.copy(REPO / "evals" / "lambda_ops" / "dataset.yaml", root / "evals" / "lambda_ops" / "dataset.yaml")
    task = "checkout-api times out. Context from the ticket: " + " ; ".join(s.text for s in IN_TASK)
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    for name, split in (("planted", "train"), ("planted_dev", "dev")):
        with (scenarios / f"{name}.yaml").open("w") as fh:
            yaml.dump(_scenario(name, split, task), fh)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for args in (["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "seed"]):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    return root


def _files(root: Path) -> Iterator[Path]:
    planted = {p.resolve() for p in (root / "evals" / "lambda_ops" / "scenarios").glob("*.yaml")}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.resolve() not in planted:
            yield path


def _hits(secrets: tuple[Secret, ...], blobs: dict[str, bytes]) -> list[tuple[str, str]]:
    return [(s.kind, where) for s in secrets for where, blob in blobs.items() if s.value.encode() in blob]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = _repo(tmp_path_factory.mktemp("secrets"))
    model_text = "Checked. The logs show " + " ".join(s.text for s in IN_LOGS[:8]) + "\nUSED: none"
    calls = [
        ("search_logs", {"function_name": "checkout-api", "pattern": MARK, "hours": 48, "limit": 50}),
        ("get_function_configuration", {"function_name": "checkout-api"}),
    ]
    tool_text = "see " + " ".join(s.text for s in IN_TASK[:6])
    outputs: dict[str, bytes] = {}
    with AutoModelStub(model_text, tool_text=tool_text, calls=calls) as model, RecordingLangSmithStub() as ls:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "SELFHEAL_"))}
        env.update(
            OPENAI_BASE_URL=model.url,
            OPENAI_API_KEY=IN_TASK[4].value if IN_TASK[4].kind.startswith("openai") else "sk-test",
            SELFHEAL_EMBEDDINGS_PROVIDER="none",
            LANGCHAIN_TRACING_V2="true",
            LANGSMITH_TRACING="true",
            LANGSMITH_ENDPOINT=ls.url,
            LANGSMITH_API_KEY=LANGSMITH_KEY,
            DATABASE_URL=IN_FEEDBACK[4].text,
            COLUMNS="400",
        )
        exe = [sys.executable, "-c", "from selfheal.cli.main import main; main()"]

        def sh(label: str, *args: str) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run([*exe, "-C", str(root), *args], env=env, capture_output=True, text=True, cwd=root,
                                  timeout=300)
            outputs[f"{label}: stdout"] = proc.stdout.encode()
            outputs[f"{label}: stderr"] = proc.stderr.encode()
            assert "Traceback" not in proc.stderr, f"{label}: {proc.stderr[-3000:]}"
            return proc

        ran = sh("run", "run", "--scenario", "planted", "--no-learn")
        assert ran.returncode in (0, 1), ran.stderr[-2000:]
        js = sh("run --json", "run", "--scenario", "planted", "--json")
        assert js.returncode in (0, 1), js.stderr[-2000:]
        run_id = json.loads(js.stdout)["run_id"]
        comment = "wrong fix; " + " ".join(s.text for s in IN_FEEDBACK[: len(IN_FEEDBACK) // 2])
        correction = "Use these: " + " ".join(s.text for s in IN_FEEDBACK[len(IN_FEEDBACK) // 2 :])
        fb = sh("feedback", "feedback", run_id, "--score", "0", "--comment", comment, "--correction", correction)
        assert fb.returncode == 0, fb.stderr
        codes = {
            "curate --dry-run": sh("curate --dry-run", "curate", "--since", "1d", "--dry-run").returncode,
            "curate": sh("curate", "curate", "--since", "1d").returncode,
            "eval": sh("eval", "eval", "--split", "train").returncode,
            "optimize": sh("optimize", "optimize", "--train-split", "train", "--validate-split", "dev").returncode,
            "traces sync": sh("traces sync", "traces", "sync").returncode,
            "traces show": sh("traces show", "traces", "show", run_id).returncode,
        }
        blobs = {str(p.relative_to(root)): p.read_bytes() for p in _files(root)}
        blobs.update(outputs)
        blobs.update({f"LangSmith request {i}": b for i, b in enumerate(ls.bodies)})
        yield {
            "root": root,
            "blobs": blobs,
            "codes": codes,
            "model_seen": json.dumps(model.requests).encode(),
            "ls": ls,
            "run_id": run_id,
        }


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 50 and len(KINDS) >= 10
    assert len({s.value for s in CORPUS}) == len(CORPUS)
    # with and without their usual prefixes
    assert any(s.text.startswith("aws_secret_access_key=") for s in CORPUS)
    assert any(s.kind == "aws_secret_key_bare" and s.text == s.value for s in CORPUS)


def test_every_secret_was_in_play(world: dict[str, Any]) -> None:
    seen = world["model_seen"]
    missing = [s.kind for s in IN_TASK + IN_LOGS if s.value.encode() not in seen]
    assert not missing, f"never reached the model: {missing}"
    assert world["codes"]["traces sync"] == 0
    assert all(code in (0, 1) for code in world["codes"].values()), world["codes"]


def test_no_secret_on_disk_in_output_or_sent(world: dict[str, Any]) -> None:
    blobs = world["blobs"]
    assert any(name.endswith("traces.sqlite") for name in blobs)
    assert any("checkpoints.sqlite" in name for name in blobs)
    hits = _hits(CORPUS, blobs)
    leaked = {kind_where[0] for kind_where in hits}
    print(f"{len(CORPUS)} secrets ({len(KINDS)} kinds) x {len(blobs)} files/outputs/payloads:"
          f" {len(hits)} hit(s), {len(leaked)} kind(s) leaked; places: {sorted({w for _, w in hits})}")
    assert hits == [], f"{len(hits)} hit(s): {hits[:20]}"
    record("secrets", tried=len(CORPUS), held=len(CORPUS), unit="secrets",
           note=f"{len(KINDS)} kinds planted in tasks, tool results, feedback and env; {len(blobs)} files/payloads grepped")
    # Placeholders show where the secrets were.
    assert b"[REDACTED:" in blobs[".selfheal/traces.sqlite"] or any(
        b"[REDACTED:" in b for n, b in blobs.items() if n.startswith(".selfheal/traces.sqlite")
    )


def test_langsmith_got_only_selfhealss_redacted_copies(world: dict[str, Any]) -> None:
    ls = world["ls"]
    assert world["run_id"] in ls.run_ids  # selfheal's own backend delivered
    # Every run LangSmith got is a copy of a stored (redacted) run: LangChain's env-var tracer,
    # which would send its own runs to project "default", never ran.
    settings = load_settings(world["root"], env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        foreign = [rid for rid in ls.run_ids if store.get_run(rid) is None]
    assert not foreign, f"{len(foreign)} run(s) uploaded outside selfheal's backend"
    assert "default" not in {run.get("session_name") for run in ls.runs.values()}
    sent = b"".join(ls.bodies)
    assert b"[REDACTED:" in sent
    assert LANGSMITH_KEY.encode() not in sent


def test_learned_entries_and_pr_bodies_hold_no_secret(tmp_path: Path) -> None:
    """Cheatsheet files are written through the guard's redaction; PR bodies are redacted whole."""
    from datetime import UTC, datetime

    from selfheal.cheatsheet.ops import AddOp, OperationBatch, apply_operations
    from selfheal.gitops.changeset import ChangeSet
    from selfheal.gitops.prbody import render_pr_body

    root = tmp_path / "cheatsheet"
    shutil.copytree(REPO / "cheatsheet", root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    ops = [
        AddOp(op="ADD", section="heuristics", task_type="lambda_timeout",
              fields={"condition": f"Timeouts seen with {s.text} in the logs number {i}",
                      "rule": f"Rotate the credential ({s.text}) before raising the timeout, case {i}"},
              tags=["secrets"], reason=f"run r{i} leaked {s.text}")
        for i, s in enumerate(CORPUS[:24])
    ]
    result = apply_operations(root, OperationBatch(operations=ops), source_runs=["r1"],
                              now=datetime(2026, 11, 1, tzinfo=UTC))
    written = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and before.get(p) != p.read_bytes()}
    assert written, result
    lines = "\n".join(c.line for c in result.changes).encode()
    assert _hits(CORPUS, {str(p): b for p, b in written.items()} | {"change lines": lines}) == []

    change = ChangeSet.model_construct(
        kind="curate", title="secrets", summary=[s.text for s in CORPUS], eval_summary=None,
        trace_ids=[], model=None,
    )
    body = render_pr_body(change, [], [("cheatsheet/x.yaml", None, "\n".join(s.text for s in CORPUS))],
                          fingerprint="f" * 16)
    assert _hits(CORPUS, {"PR body": body.encode()}) == []
    assert "[REDACTED:" in body


def test_env_tracing_is_switched_off_and_settings_still_read_it(tmp_path: Path) -> None:
    code = (
        "import os\n"
        "from selfheal.tracing.env_guard import disable_env_tracing, env_tracing_enabled\n"
        "from selfheal.config import load_settings\n"
        "before = env_tracing_enabled()\n"
        "disable_env_tracing()\n"
        "s = load_settings(os.getcwd())\n"
        "print(before, env_tracing_enabled(), 'LANGCHAIN_TRACING' in os.environ, s.tracing.langsmith)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "SELFHEAL_"))}
    env.update(LANGCHAIN_TRACING_V2="true", LANGSMITH_TRACING="true", LANGCHAIN_TRACING="true")
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.split() == ["True", "False", "False", "True"], proc.stderr[-2000:]
