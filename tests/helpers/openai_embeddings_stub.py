"""A loopback stub of OpenAI's ``POST /v1/embeddings``, to drive langchain-openai's real client.

Each input string gets a deterministic vector (hashed words, like
``FakeEmbedder``, deliberately *not* unit length so normalisation is tested);
``fail_next(status)`` scripts an HTTP error. Requests are recorded.

    with OpenAIEmbeddingsStub(dim=16) as stub:
        OpenAIEmbedder("text-embedding-3-small", base_url=stub.url, api_key="x").embed(["hi"])
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import ThreadingHTTPServer
from typing import Any

from selfheal.models.embeddings import FakeEmbedder
from helpers.json_http import JsonHandler


class OpenAIEmbeddingsStub:
    def __init__(self, dim: int = 16) -> None:
        self.dim = dim
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._errors: deque[int] = deque()
        self._fake = FakeEmbedder(dim)
        self._lock = threading.Lock()
        stub = self

        class Handler(JsonHandler):

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw or b"{}")
                with stub._lock:
                    stub.requests.append(body)
                    stub.headers.append({k.lower(): v for k, v in self.headers.items()})
                    error = stub._errors.popleft() if stub._errors else None
                if not self.path.rstrip("/").endswith("/embeddings"):
                    status, payload = 404, {"error": {"message": f"no route {self.path}", "type": "not_found"}}
                elif error is not None:
                    status, payload = error, {"error": {"message": f"scripted HTTP {error}", "type": "stub_error"}}
                else:
                    status, payload = 200, stub._response(body)
                self.send_json(status, payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-embeddings-stub", daemon=True)

    def _response(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        if any(not isinstance(t, str) for t in texts):  # token arrays: the client tokenised (tiktoken)
            raise AssertionError("client sent tokens instead of raw text")
        vectors = self._fake.embed(texts) * 3.0  # not unit length on purpose
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
            "model": body.get("model", "stub"),
            "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
        }

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._errors.extend([status] * times)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIEmbeddingsStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
