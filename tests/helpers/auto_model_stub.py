"""An OpenAI-compatible loopback model that answers any request by itself, saying what it is told to.

For whole-command tests (``selfheal run``, ``eval``, ``curate``, ``optimize``)
where scripting each reply is impractical: a request with tools and no tool
result yet gets a call of the first tool (or of the tool ``tool_choice``
forces, as structured output does), its arguments filled from the tool's JSON
schema; any other request gets ``text``. Every string the stub invents is
``text``, so a test can make the model "say" planted secrets everywhere.
"""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from typing import Any

from helpers.json_http import JsonHandler


def fill_schema(schema: dict[str, Any], text: str, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A value valid for a (simple) JSON schema, strings set to ``text``."""
    defs = defs if defs is not None else schema.get("$defs", schema.get("definitions", {}))
    if "$ref" in schema:
        return fill_schema(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), text, defs, depth + 1)
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            options = [o for o in schema[combo] if o.get("type") != "null"] or schema[combo]
            return fill_schema(options[0], text, defs, depth + 1)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        if depth > 6:
            return {}
        return {name: fill_schema(sub, text, defs, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [] if depth > 6 else [fill_schema(schema.get("items", {}), text, defs, depth + 1)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 0.5) or 0.5)
    if kind == "boolean":
        return False
    return text


class AutoModelStub:
    """Threaded HTTP server on 127.0.0.1 speaking chat completions (and embeddings), unscripted."""

    def __init__(
        self,
        text: str = "Done.\nUSED: none",
        tool_text: str | None = None,
        calls: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.text = text
        #: Tool calls made first, one per turn, before the stub answers (when those tools are bound).
        self.calls = list(calls or [])
        self.tool_text = tool_text if tool_text is not None else text
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with stub._lock:
                    stub.requests.append(body)
                if self.path.rstrip("/").endswith("/embeddings"):
                    inputs = body.get("input") or [""]
                    inputs = inputs if isinstance(inputs, list) else [inputs]
                    data = [{"object": "embedding", "index": i, "embedding": [0.1] * 8} for i in range(len(inputs))]
                    self.send_json(200, {"object": "list", "data": data, "model": "stub",
                                         "usage": {"prompt_tokens": 1, "total_tokens": 1}})
                    return
                self.send_json(200, stub.reply(body))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="auto-model-stub", daemon=True)

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = body.get("tools") or []
        choice = body.get("tool_choice")
        forced = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        called = sum(m.get("role") == "tool" for m in body.get("messages", []))
        names = {t["function"]["name"] for t in tools}
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        finish = "stop"
        if not forced and choice != "none" and called < len(self.calls) and self.calls[called][0] in names:
            name, args = self.calls[called]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{len(self.requests)}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}]}
            finish = "tool_calls"
        elif tools and choice != "none" and (forced or not called):
            fn = next((t["function"] for t in tools if t["function"]["name"] == forced), tools[0]["function"])
            args = fill_schema(fn.get("parameters") or {}, self.tool_text)
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{len(self.requests)}", "type": "function",
                 "function": {"name": fn["name"], "arguments": json.dumps(args)}}]}
            finish = "tool_calls"
        elif (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            schema = ((body["response_format"].get("json_schema") or {}).get("schema")) or {}
            message["content"] = json.dumps(fill_schema(schema, self.tool_text))
        return {
            "id": "chatcmpl-auto", "object": "chat.completion", "created": 0, "model": "auto-stub",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> AutoModelStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
