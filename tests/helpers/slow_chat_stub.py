"""An OpenAI-compatible chat stub that answers every request, slowly, for whole CLI commands.

The scripted :class:`helpers.openai_stub.OpenAIStub` serves replies in order,
which a command killed at a random point cannot follow. This one answers by
what is asked: an agent turn with tools gets one tool call (checking a
function's configuration: a wrong fix, so the run fails and there is
something to curate), then a final answer; the Reflector gets a diagnosis
and the Curator one ADD with a fresh lesson. Each reply waits ``delay_s``,
so a SIGKILL lands while a command is mid-run rather than after it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from helpers.json_http import JsonHandler

_REFLECTION = {
    "error": "the configuration was read but nothing was changed",
    "root_cause": "the agent stopped after one lookup",
    "correct_approach": "raise the timeout to cover the slowest upstream call",
    "key_insight": "Change the limiting setting after reading the configuration.",
    "entry_tags": {},
}


def _completion(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-slow", "object": "chat.completion", "created": int(time.time()), "model": "slow-stub",
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client killed mid-request resets its connection: expected here, not worth a traceback."""


class SlowChatStub:
    """Threaded loopback server; ``url`` is the OpenAI base URL (``.../v1``)."""

    def __init__(self, delay_s: float = 0.15) -> None:
        self.delay_s = delay_s
        self.requests = 0
        self._lessons = itertools.count(1)
        self._lock = threading.Lock()
        stub = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with stub._lock:
                    stub.requests += 1
                time.sleep(stub.delay_s)
                try:
                    self.send_json(200, _completion(stub.reply(body)))
                except (BrokenPipeError, ConnectionResetError):  # the client was killed mid-request
                    pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slow-chat-stub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        system = str(messages[0].get("content") or "") if messages else ""
        tools = body.get("tools") or []
        if tools:
            if not any(m.get("role") == "tool" for m in messages):
                names = [t["function"]["name"] for t in tools]
                name = "get_function_configuration" if "get_function_configuration" in names else names[0]
                args = {"function_name": "checkout-api"} if name == "get_function_configuration" else {}
                return {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}
            return {"role": "assistant", "content": "Checked the configuration; nothing changed.\nUSED: none"}
        if "You are the Curator" in system:
            n = next(self._lessons)
            op = {"op": "ADD", "section": "failure_patterns", "task_type": "lambda_timeout",
                  "fields": {"pattern": f"Stopping after one lookup (case {n})",
                             "lesson": f"After reading the configuration, change the limiting setting ({n})."},
                  "reason": "the run stopped after one lookup"}
            return {"role": "assistant", "content": json.dumps({"operations": [op]})}
        if "You are the Reflector" in system:
            return {"role": "assistant", "content": json.dumps(_REFLECTION)}
        return {"role": "assistant", "content": "ok"}

    def __enter__(self) -> SlowChatStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
