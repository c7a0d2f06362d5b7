"""An endpoint answering HTTP 200 with something that is not a chat completion is a ModelError (exit 2).

Proxies and misconfigured servers answer 200 with an HTML page, an empty body
or JSON of another shape; the client library then fails deep inside with
ValueError/TypeError/AttributeError. A user must see one line naming the
endpoint and the configuration exit code, not a traceback and not exit 1
("the task failed").
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers.reliability import record

from selfheal.cli.main import main
from selfheal.errors import ModelError

REPO = Path(__file__).resolve().parents[1]


class _RawStub:
    """Answers every POST with HTTP 200 and a fixed body and content type."""

    def __init__(self, body: bytes, content_type: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BODIES = [
    (b"<html>oops</html>", "text/html"),
    (b"<html>oops</html>", "application/json"),
    (b"", "application/json"),
    (b'{"foo": 1}', "application/json"),
    (b"[1, 2]", "application/json"),
    (b'{"choices": [{"message": 5}]}', "application/json"),
]


@pytest.fixture(params=BODIES, ids=lambda b: f"{b[1]}:{b[0][:12]!r}")
def stub(request: pytest.FixtureRequest) -> Iterator[_RawStub]:
    s = _RawStub(*request.param)
    yield s
    s.close()


def test_the_chat_model_raises_a_model_error(tmp_path: Path, stub: _RawStub) -> None:
    from selfheal.config import load_settings
    from selfheal.models.openai_chat import make_openai_chat

    settings = load_settings(tmp_path, env={"OPENAI_BASE_URL": stub.url}, overrides={"model": {"max_retries": 0}})
    with pytest.raises(ModelError, match=r"model endpoint http://127\.0\.0\.1:\d+/v1 answered with"):
        make_openai_chat(settings).invoke("hello")
    record("faults", tried=1, held=1, unit="faults", note="model endpoint replies that are not chat completions")


@pytest.mark.parametrize("agent", ["lambda_ops", "sql_analyst"])
def test_run_prints_one_line_and_exits_2(tmp_path: Path, agent: str, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    (tmp_path / "selfheal.yaml").write_text(f"agent: {agent}\nmodel:\n  provider: openai\n  max_retries: 0\n")
    s = _RawStub(b"<html>oops</html>", "text/html")
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", s.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        with pytest.raises(SystemExit) as info:
            main(["-C", str(tmp_path), "run", "--no-learn", "what is wrong?"])
    finally:
        s.close()
    _out, err = capsys.readouterr()
    assert info.value.code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and "not a chat completion" in err and s.url in err
