"""A loopback stub of the OpenAI chat-completions API, to drive the real client libraries.

Scripted replies (text, tool calls, HTTP errors, delays) are served in order
to ``POST /v1/chat/completions``; every request body is recorded. Nothing
leaves 127.0.0.1.

    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_config", {"name": "api"})])
        model = ChatOpenAI(base_url=stub.url, api_key="x")
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from helpers.json_http import JsonHandler


def chat_completion(
    content: str | None = None,
    tool_calls: Sequence[tuple[str, Any] | tuple[str, Any, str]] | None = None,
    *,
    model: str = "stub-model",
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
) -> dict[str, Any]:
    """A chat.completion body; tool call args may be a dict or a raw (even malformed) string."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        calls = []
        for i, spec in enumerate(tool_calls):
            name, args = spec[0], spec[1]
            call_id = spec[2] if len(spec) > 2 else f"call_stub_{i}"  # type: ignore[misc]
            calls.append({
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            })
        message["tool_calls"] = calls
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


@dataclass
class _Reply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: dict[str, Any]


class OpenAIStub:
    """Threaded HTTP server on 127.0.0.1:<free port> speaking chat completions."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._script: deque[_Reply] = deque()
        self._lock = threading.Lock()
        stub = self

        class Handler(JsonHandler):

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                with stub._lock:
                    stub.requests.append(
                        RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    reply = stub._script.popleft() if stub._script else _Reply(
                        500, {"error": {"message": "stub script exhausted", "type": "server_error"}}
                    )
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    reply = _Reply(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_json(reply.status, reply.body)
                except (BrokenPipeError, ConnectionResetError):  # client gave up (timeout test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-stub", daemon=True
        )

    # -- lifecycle --

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- script --

    def reply(self, body: dict[str, Any], *, status: int = 200, delay_s: float = 0.0) -> None:
        with self._lock:
            self._script.append(_Reply(status, body, delay_s))

    def reply_text(self, content: str, **kwargs: Any) -> None:
        self.reply(chat_completion(content, **kwargs))

    def reply_tool_calls(self, calls: Sequence[tuple[str, Any] | tuple[str, Any, str]], *,
                         content: str | None = None, **kwargs: Any) -> None:
        self.reply(chat_completion(content, calls, **kwargs))

    def reply_error(self, status: int, message: str = "boom", *, kind: str = "server_error") -> None:
        self.reply({"error": {"message": message, "type": kind}}, status=status)

    def reply_slow(self, delay_s: float, content: str = "late") -> None:
        self.reply(chat_completion(content), delay_s=delay_s)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests]


def closed_port_url() -> str:
    """A loopback URL with nothing listening (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def openai_stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub
