"""A stand-in for selfheal's model process: same ready line, same endpoints, scripted replies.

Run as a child by tests (``python fake_model_process.py``), so the real
process-owning code (start, ready line, HTTP, death detection, restart) is
exercised without llama.cpp. A request whose last user or tool message
contains ``CRASH:<SIGNAL>`` kills the process with that signal, as a native
crash in llama.cpp would; one containing ``SLOW:<seconds>`` answers only after
that long; every other request gets a plain text answer, or a call of the
first bound tool when the request requires one.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

from json_http import JsonHandler  # run as a script: this folder is on sys.path


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(body.get("messages", []))
    if "CRASH:" in text:
        name = text.split("CRASH:", 1)[1][:7].rstrip('"\\ ,}')
        os.kill(os.getpid(), getattr(signal, name, signal.SIGSEGV))
        time.sleep(30)  # the signal ends the process before any reply is written
    if "SLOW:" in text:  # a generation that runs past the caller's timeout
        time.sleep(float(text.split("SLOW:", 1)[1].split('"', 1)[0]))
    tools = body.get("tools") or []
    message: dict[str, Any] = {"role": "assistant", "content": "done. USED: none"}
    finish = "stop"
    calls = sum(1 for m in body.get("messages", []) if m.get("role") == "tool")
    if tools and calls == 0 and body.get("tool_choice") != "none":
        fn = tools[0]["function"]
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": fn["name"], "arguments": "{}"}}]}
        finish = "tool_calls"
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        "selfheal": {"seconds": 0.0, "pid": os.getpid()},
    }


class Handler(JsonHandler):

    def do_GET(self) -> None:  # noqa: N802
        self.send_json(200, {"status": "ok", "pid": os.getpid(), "cpu_features": ["FAKE"]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if "Requested tokens" in json.dumps(body):
            self.send_json(400, {"error": {"message": "Requested tokens (9000) exceed context window of 8192"}})
            return
        self.send_json(200, _reply(body))


def main() -> None:
    if os.environ.get("FAKE_MODEL_FAIL_START"):
        print(json.dumps({"ready": False, "error": os.environ["FAKE_MODEL_FAIL_START"]}), flush=True)
        sys.exit(3)
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"ready": True, "port": httpd.server_address[1], "pid": os.getpid()}), flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
