"""A loopback stub of LangSmith's REST API, for driving the real ``langsmith.Client``.

It implements what the client calls to trace, give feedback and read back:
``GET /info``, ``POST /runs``, ``PATCH /runs/{id}``, ``POST /runs/batch``,
``POST /runs/multipart`` (form parts ``post.<id>``, ``patch.<id>``,
``post.<id>.inputs`` ..., ``feedback.<id>``; zstd bodies are decompressed),
``POST /runs/query`` (cursor pages; ``filter`` supports ``and``/``or``/``eq``/
``neq``/``has`` on the fields the tests use), ``GET /runs/{id}``,
``POST /feedback``, ``GET``/``POST /sessions``. Runs are merged by id as
LangSmith does (a post creates, a patch fills in non-null fields; a second post
of a known id is a conflict) and kept in :attr:`LangSmithStub.runs`.

:meth:`LangSmithStub.set_mode` switches the whole API to ``"fail"`` (HTTP 500)
or ``"blackhole"`` (the request is read and never answered) and back to ``"ok"``.
:class:`Blackhole` is a bare socket that accepts connections and never answers,
for subprocess tests that only need an endpoint that hangs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from helpers.json_http import JsonHandler

_PAGE_SIZE = 100
_JSON_PARTS = ("inputs", "outputs", "events", "extra", "error", "serialized")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    stub: LangSmithStub


class LangSmithStub:
    """LangSmith's tracing and read endpoints on ``127.0.0.1:<free port>``."""

    def __init__(self, *, zstd: bool = False, page_size: int = _PAGE_SIZE) -> None:
        self._server = _StubServer(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="langsmith-stub", daemon=True
        )
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.zstd = zstd
        self.page_size = page_size
        self.mode = "ok"
        #: Every run received, merged by id (JSON values decoded).
        self.runs: dict[str, dict[str, Any]] = {}
        #: ("post" | "patch", run id) in arrival order, including conflicting posts.
        self.operations: list[tuple[str, str]] = []
        self.feedback: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        #: (method, path) of every request, answered or not.
        self.requests: list[tuple[str, str]] = []
        #: Content-Encoding of every multipart body ("" when plain).
        self.multipart_encodings: list[str] = []
        self.tenant_id = str(uuid.uuid4())

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LangSmithStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let blackholed handlers go
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LangSmithStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_mode(self, mode: str) -> None:
        """``ok``, ``fail`` (every request gets HTTP 500) or ``blackhole`` (no answer)."""
        if mode not in ("ok", "fail", "blackhole"):
            raise ValueError(mode)
        self.mode = mode
        if mode == "blackhole":
            self._release.clear()
        else:
            self._release.set()

    # -- what tests look at ----------------------------------------------------
    @property
    def run_ids(self) -> set[str]:
        with self._lock:
            return set(self.runs)

    def wait_for_runs(self, ids: Iterable[str], timeout: float = 5.0) -> bool:
        wanted = {str(i) for i in ids}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if wanted <= self.run_ids:
                return True
            time.sleep(0.02)
        return wanted <= self.run_ids

    def session_id(self, name: str) -> str:
        with self._lock:
            return self._ensure_session(name)["id"]

    # -- state changes (called by the handler) ---------------------------------
    def _ensure_session(self, name: str) -> dict[str, Any]:
        session = self.sessions.get(name)
        if session is None:
            session = {
                "id": str(uuid.uuid4()),
                "name": name,
                "start_time": _now(),
                "tenant_id": self.tenant_id,
                "reference_dataset_id": None,
                "extra": {},
            }
            self.sessions[name] = session
        return session

    def _post_run(self, run: dict[str, Any]) -> bool:
        """Create a run; False if its id is known (LangSmith answers 409 on /runs)."""
        rid = str(run["id"])
        with self._lock:
            self.operations.append(("post", rid))
            if rid in self.runs:
                return False
            run = dict(run, id=rid)
            name = run.pop("session_name", None)
            if name and not run.get("session_id"):
                run["session_id"] = self._ensure_session(name)["id"]
            self.runs[rid] = run
            return True

    def _patch_run(self, rid: str, patch: dict[str, Any]) -> None:
        with self._lock:
            self.operations.append(("patch", rid))
            run = self.runs.setdefault(rid, {"id": rid})
            for key, value in patch.items():
                if value is not None and key != "session_name":
                    run[key] = value

    def _public_run(self, run: dict[str, Any]) -> dict[str, Any]:
        out = dict(run)
        out.setdefault("inputs", {})
        out.setdefault("extra", {})
        out["status"] = "error" if run.get("error") else ("success" if run.get("end_time") else "pending")
        if out.get("trace_id") is None:
            out["trace_id"] = run["id"]
        out.setdefault("dotted_order", "")
        return out

    def _query(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            runs = [self._public_run(r) for r in self.runs.values()]
        sessions = body.get("session")
        if sessions:
            runs = [r for r in runs if r.get("session_id") in {str(s) for s in sessions}]
        if body.get("trace"):
            runs = [r for r in runs if str(r.get("trace_id")) == str(body["trace"])]
        if body.get("id"):
            runs = [r for r in runs if r["id"] in {str(i) for i in body["id"]}]
        if body.get("parent_run"):
            runs = [r for r in runs if r.get("parent_run_id") == str(body["parent_run"])]
        if body.get("is_root") is not None:
            runs = [r for r in runs if (r.get("parent_run_id") is None) == body["is_root"]]
        if body.get("run_type"):
            runs = [r for r in runs if r.get("run_type") == body["run_type"]]
        if body.get("error") is not None:
            runs = [r for r in runs if bool(r.get("error")) == body["error"]]
        if body.get("start_time"):
            since = _parse_time(body["start_time"])
            runs = [r for r in runs if _parse_time(r["start_time"]) >= since]
        if body.get("filter"):
            expr = _parse_filter(body["filter"])
            runs = [r for r in runs if _eval_filter(expr, r)]
        runs.sort(key=lambda r: (_parse_time(r["start_time"]), r.get("dotted_order") or ""), reverse=True)
        offset = int(body.get("cursor") or 0)
        page = runs[offset : offset + self.page_size]
        more = offset + self.page_size < len(runs)
        return {"runs": page, "cursors": {"next": str(offset + self.page_size) if more else None}}


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).replace("Z", "+00:00")
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# -- a tiny evaluator for the filter calls the tests send ------------------------
def _parse_filter(text: str) -> Any:
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\n,":
            pos += 1

    def value() -> Any:
        nonlocal pos
        skip()
        if text[pos] in "\"'":
            quote = text[pos]
            end = pos + 1
            while text[end] != quote:
                end += 2 if text[end] == "\\" else 1
            raw = text[pos + 1 : end]
            pos = end + 1
            if quote == "'":
                raw = raw.replace("\\'", "'").replace('"', '\\"')
            return json.loads('"' + raw + '"')
        start = pos
        while pos < len(text) and text[pos] not in ",() ":
            pos += 1
        word = text[start:pos]
        if pos < len(text) and text[pos] == "(":
            pos += 1
            args = []
            while True:
                skip()
                if text[pos] == ")":
                    pos += 1
                    return (word, args)
                args.append(value())
        return {"true": True, "false": False, "null": None}.get(word, word)

    return value()


def _field(run: dict[str, Any], name: str) -> Any:
    if name == "metadata":
        return (run.get("extra") or {}).get("metadata") or {}
    return run.get(name)


def _eval_filter(expr: Any, run: dict[str, Any]) -> bool:
    op, args = expr
    if op == "and":
        metadata_keys = [a[1][1] for a in args if a[0] == "eq" and a[1][0] == "metadata_key"]
        metadata_values = [a[1][1] for a in args if a[0] == "eq" and a[1][0] == "metadata_value"]
        rest = [a for a in args if not (a[0] == "eq" and a[1][0] in ("metadata_key", "metadata_value"))]
        if metadata_keys:
            md = _field(run, "metadata")
            for key, val in zip(metadata_keys, metadata_values, strict=False):
                if key not in md or json.dumps(md[key]) not in (json.dumps(val), val):
                    if str(md.get(key)) != str(val):
                        return False
        return all(_eval_filter(a, run) for a in rest)
    if op == "or":
        return any(_eval_filter(a, run) for a in args)
    field, val = args
    actual = _field(run, field)
    if op == "eq":
        return actual == val
    if op == "neq":
        return actual != val
    if op == "has":
        if field == "metadata":
            want = json.loads(val) if isinstance(val, str) else val
            return all(actual.get(k) == v for k, v in want.items())
        return val in (actual or [])
    if op in ("lt", "gt", "lte", "gte") and field in ("start_time", "end_time"):
        left, right = _parse_time(actual), _parse_time(val)
        return {"lt": left < right, "gt": left > right, "lte": left <= right, "gte": left >= right}[op]
    raise ValueError(f"stub filter cannot evaluate {op}({field}, ...)")


# -- HTTP ----------------------------------------------------------------------
class _Handler(JsonHandler):
    server: _StubServer

    @property
    def stub(self) -> LangSmithStub:
        return self.server.stub

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "zstd":
            import zstandard

            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        return data

    def _send(self, status: int, payload: Any = None) -> None:
        self.send_json(status, payload if payload is not None else {})

    def _handle(self, method: str) -> None:
        stub = self.stub
        split = urlsplit(self.path)
        path = split.path.rstrip("/")
        body = self._body()
        with stub._lock:
            stub.requests.append((method, path))
        if stub.mode == "blackhole":
            stub._release.wait(60)
            self.close_connection = True
            return
        if stub.mode == "fail":
            self._send(500, {"detail": "stub is failing"})
            return
        try:
            status, payload = self._route(method, path, parse_qs(split.query), body)
        except Exception as exc:  # a stub bug must show up as a failing request
            status, payload = 400, {"detail": f"{type(exc).__name__}: {exc}"}
        self._send(status, payload)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        stub = self.stub
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/info":
            return 200, {
                "version": "0.10.0",
                "batch_ingest_config": {
                    "use_multipart_endpoint": True,
                    "size_limit": 100,
                    "size_limit_bytes": 20_971_520,
                    "scale_up_nthreads_limit": 16,
                    "scale_up_qsize_trigger": 1000,
                    "scale_down_nempty_trigger": 4,
                },
                "instance_flags": {"zstd_compression_enabled": stub.zstd},
            }
        if method == "POST" and path == "/runs":
            created = stub._post_run(json.loads(body))
            return (200, {}) if created else (409, {"detail": "run exists"})
        if method == "POST" and path == "/runs/batch":
            data = json.loads(body)
            for run in data.get("post") or []:
                stub._post_run(run)
            for run in data.get("patch") or []:
                stub._patch_run(str(run["id"]), run)
            return 202, {}
        if method == "POST" and path == "/runs/multipart":
            stub.multipart_encodings.append(self.headers.get("Content-Encoding") or "")
            self._multipart(body)
            return 202, {}
        if method == "POST" and path == "/runs/query":
            return 200, stub._query(json.loads(body or b"{}"))
        if method == "PATCH" and len(parts) == 2 and parts[0] == "runs":
            stub._patch_run(parts[1], json.loads(body))
            return 200, {}
        if method == "GET" and len(parts) == 2 and parts[0] == "runs":
            with stub._lock:
                run = stub.runs.get(parts[1])
                found = None if run is None else stub._public_run(run)
            return (200, found) if found else (404, {"detail": "run not found"})
        if method == "POST" and path == "/feedback":
            fb = json.loads(body)
            with stub._lock:
                if str(fb["id"]) in stub.feedback:
                    return 409, {"detail": "feedback exists"}
                stub.feedback[str(fb["id"])] = fb
            return 200, fb
        if path == "/sessions" and method == "GET":
            names = query.get("name") or []
            with stub._lock:
                found = [s for s in stub.sessions.values() if not names or s["name"] in names]
            return 200, found
        if path == "/sessions" and method == "POST":
            data = json.loads(body)
            with stub._lock:
                if data["name"] in stub.sessions:
                    return 409, {"detail": "session exists"}
                session = stub._ensure_session(data["name"])
            return 200, session
        if method == "GET" and len(parts) == 2 and parts[0] == "sessions":
            with stub._lock:
                for s in stub.sessions.values():
                    if s["id"] == parts[1]:
                        return 200, s
            return 404, {"detail": "session not found"}
        return 404, {"detail": f"stub has no {method} {path}"}

    def _multipart(self, body: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        posts: dict[str, dict[str, Any]] = {}
        patches: dict[str, dict[str, Any]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True)
            pieces = str(name).split(".")
            if pieces[0] == "feedback":
                fb = json.loads(data)
                with self.stub._lock:
                    self.stub.feedback[pieces[1]] = fb
                continue
            if pieces[0] not in ("post", "patch"):
                continue  # attachments are not kept
            target = posts if pieces[0] == "post" else patches
            run = target.setdefault(pieces[1], {})
            if len(pieces) == 2:
                run.update(json.loads(data))
            elif pieces[2] in _JSON_PARTS:
                run[pieces[2]] = json.loads(data)
        for rid, run in posts.items():
            self.stub._post_run(dict(run, id=rid))
        for rid, run in patches.items():
            self.stub._patch_run(rid, run)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


class Blackhole:
    """A loopback socket that accepts connections and never answers (a hung LangSmith)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._held: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._held.append(conn)

    def __enter__(self) -> Blackhole:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed = True
        self._sock.close()
        for conn in self._held:
            conn.close()


# -- a small real graph to trace: a fake chat model that calls a tool ------------
def build_graph() -> Any:
    """agent (fake chat model asking for a tool) -> tools (ToolNode) -> agent (final answer)."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.tools import tool
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    @tool
    def update_memory(function: str, memory_mb: int) -> str:
        """Set a Lambda function's memory in MB."""
        return f"{function} now has {memory_mb} MB"

    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    "",
                    tool_calls=[
                        {
                            "name": "update_memory",
                            "args": {"function": "checkout-api", "memory_mb": 1024},
                            "id": "call-1",
                        }
                    ],
                    usage_metadata={"input_tokens": 40, "output_tokens": 12, "total_tokens": 52},
                ),
                AIMessage("checkout-api now has 1024 MB"),
            ]
        )
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([update_memory]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "agent")
    return graph.compile()


GRAPH_INPUT = {"messages": [("user", "checkout-api times out at 3 s")]}
