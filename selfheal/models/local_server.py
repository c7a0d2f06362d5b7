"""The embedded model's own process: an OpenAI-compatible endpoint on loopback.

Run as ``python -m selfheal.models.local_server --model PATH ...`` by
:mod:`selfheal.models.local_process`, never by hand. llama.cpp is native code:
a build for the wrong CPU segfaults (or raises SIGILL) on the first
generation, and out-of-memory kills the whole process. Keeping it here means
such a crash kills only this child; selfheal sees a dropped connection and
reports it as one ``ModelError`` instead of dying with it.

What it serves (JSON over HTTP, one model, requests serialized by a lock
because a llama context is not thread-safe):

* ``POST /v1/chat/completions``: OpenAI chat completions (tools, tool_choice,
  ``response_format`` json_object with a schema) through selfheal's
  tool-calling handler; the response adds ``selfheal`` timings (seconds,
  prompt tokens actually evaluated vs reused from the KV cache).
* ``GET /health``: the model, the CPU features llama.cpp runs with.
* ``POST /selfheal/check``: prompt and generation speed on a fixed prompt.

The KV cache persists across requests (this process lives as long as the
selfheal process that owns it), and the *fixed prefix* of a tool-bound
prompt — the system header with the tool block, identical across runs — is
saved to ``--state-dir`` once and loaded by later processes, so a new CLI
invocation does not pay ~40 s to re-read ~1,600 tokens of tool schemas.

The child exits when its parent goes away: a watcher thread ends the process
when stdin reaches EOF (the parent closed it, exited or was killed).
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_CHAT_KEYS = {
    "messages", "tools", "tool_choice", "temperature", "top_p", "top_k", "min_p", "max_tokens", "stop",
    "seed", "response_format", "repeat_penalty", "presence_penalty", "frequency_penalty", "functions",
    "function_call", "logit_bias",
}
_STATE_FORMAT = 2
_BOUNDARY_TOKENS = 4


def die_with_parent() -> None:
    """Exit when the parent goes away: its end of our stdin closes (also when it is SIGKILLed).

    Not PR_SET_PDEATHSIG: Linux sends that signal when the parent *thread* that
    started us exits, and selfheal starts the model from whichever thread asks
    first (an eval worker): measured, the model was SIGKILLed mid-request when
    that worker finished.
    """

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def cpu_features(system_info: str) -> list[str]:
    """``AVX = 1 | AVX2 = 1 | AVX512 = 0 | ...`` (or ``CPU : AVX2 = 1 | ...``) -> ['AVX', 'AVX2', ...]."""
    feats = []
    for part in system_info.replace("\n", "|").split("|"):
        name, sep, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if sep and value.strip() == "1" and name:
            feats.append(name)
    return feats


class ModelServer:
    """One loaded ``Llama`` with selfheal's tool-calling handler, and its prefix-state cache."""

    def __init__(self, args: argparse.Namespace) -> None:
        from llama_cpp import Llama, llama_print_system_info

        from selfheal.models.tool_protocols import make_chat_handler

        self.args = args
        self.lock = threading.Lock()
        # The fixed prefix (see warm_prefix) is how selfheal's own handlers render tools.
        self.handler = make_chat_handler(args.chat_format, tool_bias=args.tool_bias, max_calls=args.max_tool_calls)
        self.own_handler = self.handler is not None
        chat: dict[str, Any] = (
            {"chat_handler": self.handler} if self.own_handler else {"chat_format": args.chat_format}
        )
        started = time.perf_counter()
        self.llama = Llama(
            model_path=args.model,
            n_ctx=args.n_ctx,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            seed=args.seed,
            verbose=False,
            **chat,
        )
        self.load_s = time.perf_counter() - started
        info = llama_print_system_info()
        self.system_info = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
        self.evaluated = 0
        real_eval = self.llama.eval

        def counting_eval(tokens: Any) -> None:
            self.evaluated += len(tokens)
            real_eval(tokens)

        self.llama.eval = counting_eval  # type: ignore[method-assign]
        self.state_dir = Path(args.state_dir) if args.state_dir else None
        self.prefix_loads = 0
        self.prefix_saves = 0
        self._prefix_tokens: tuple[str, list[int]] = ("", [])

    # -- the fixed prefix's KV state, shared across processes -------------------
    def _state_path(self, prefix: str) -> Path | None:
        if self.state_dir is None:
            return None
        st = os.stat(self.args.model)
        key = hashlib.sha256(
            json.dumps([_STATE_FORMAT, os.path.realpath(self.args.model), st.st_size, self.args.n_ctx, prefix])
            .encode()
        ).hexdigest()[:24]
        return self.state_dir / f"prefix-{key}.kv"

    def warm_prefix(self, prefix: str) -> str:
        """Make the KV cache start with ``prefix``: already there, loaded from disk, or computed and saved."""
        import numpy as np
        import llama_cpp

        # Tokenized as create_completion tokenizes a prompt (once per prefix: every turn sends it).
        # The last tokens are dropped: BPE may merge the prefix's end with what follows it in a
        # whole prompt, and a prefix that does not match the prompt token for token would make
        # every request re-read it.
        if self._prefix_tokens[0] != prefix:
            cut = self.llama.tokenize(prefix.encode("utf-8"), special=True)[:-_BOUNDARY_TOKENS]
            self._prefix_tokens = (prefix, cut)
        tokens = self._prefix_tokens[1]
        if len(tokens) < 64:
            return "short"
        n = self.llama.n_tokens
        if n >= len(tokens) and list(self.llama.input_ids[: len(tokens)]) == tokens:
            return "in-memory"
        path = self._state_path(prefix)
        ctx = self.llama._ctx.ctx  # noqa: SLF001 - llama-cpp-python keeps the context here
        if path is not None and path.is_file():
            data = path.read_bytes()
            ids = np.frombuffer(data[8 : 8 + 4 * len(tokens)], dtype=np.intc)
            if int.from_bytes(data[:8], "little") == len(tokens) and ids.tolist() == tokens:
                blob = data[8 + 4 * len(tokens) :]
                buf = (ctypes.c_uint8 * len(blob)).from_buffer_copy(blob)
                self.llama.reset()
                if llama_cpp.llama_state_set_data(ctx, buf, len(blob)) == len(blob):
                    self.llama.input_ids[: len(tokens)] = tokens
                    self.llama.n_tokens = len(tokens)
                    self.prefix_loads += 1
                    return "disk"
        self.llama.reset()
        self.llama.eval(tokens)
        if path is not None:
            size = llama_cpp.llama_state_get_size(ctx)
            buf = (ctypes.c_uint8 * size)()
            written = llama_cpp.llama_state_get_data(ctx, buf, size)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            with tmp.open("wb") as fh:
                fh.write(len(tokens).to_bytes(8, "little"))
                fh.write(np.asarray(tokens, dtype=np.intc).tobytes())
                fh.write(bytes(buf)[:written])
            os.replace(tmp, path)
            self.prefix_saves += 1
        return "computed"

    # -- endpoints ---------------------------------------------------------------
    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        request = {k: v for k, v in body.items() if k in _CHAT_KEYS and v is not None}
        with self.lock:
            started = time.perf_counter()
            before = self.evaluated
            prefix_source = None
            if self.own_handler and request.get("tools") and request.get("tool_choice") != "none":
                prefix_source = self.warm_prefix(self.handler.prefix(request["tools"]))
            warm_evaluated = self.evaluated - before
            response = self.llama.create_chat_completion(**request)
            seconds = time.perf_counter() - started
            evaluated = self.evaluated - before
        usage = response.get("usage") or {}
        completion = int(usage.get("completion_tokens") or 0)
        prompt = int(usage.get("prompt_tokens") or 0)
        response["selfheal"] = {
            "seconds": round(seconds, 4),
            "evaluated_tokens": evaluated,
            "prompt_tokens_evaluated": max(0, evaluated - completion),
            "prompt_tokens_reused": max(0, prompt - max(0, evaluated - completion)),
            "prefix_tokens_evaluated": warm_evaluated,
            "prefix": prefix_source,
        }
        return response

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.args.model_name,
            "model_path": self.args.model,
            "pid": os.getpid(),
            "threads": self.args.threads,
            "n_ctx": self.args.n_ctx,
            "load_s": round(self.load_s, 3),
            "system_info": self.system_info,
            "cpu_features": cpu_features(self.system_info),
            "prefix_loads": self.prefix_loads,
            "prefix_saves": self.prefix_saves,
        }

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        """Prompt speed (a ~200-token prompt read cold) and generation speed (``tokens`` greedy tokens)."""
        n_gen = int(body.get("tokens") or 16)
        text = (
            "<|im_start|>system\nYou are a careful AWS Lambda operations engineer. "
            + "Inspect configuration, metrics and logs before changing anything. " * 12
            + "<|im_end|>\n<|im_start|>user\nCount from one to twenty in words.<|im_end|>\n<|im_start|>assistant\n"
        )
        with self.lock:
            tokens = self.llama.tokenize(text.encode("utf-8"), special=True)
            self.llama.reset()
            t0 = time.perf_counter()
            self.llama.eval(tokens)
            prompt_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            out = self.llama.create_completion(tokens, max_tokens=n_gen, temperature=0.0)
            gen_s = time.perf_counter() - t1
            self.llama.reset()
        generated = int((out.get("usage") or {}).get("completion_tokens") or 0)
        return {
            "prompt_tokens": len(tokens),
            "prompt_s": round(prompt_s, 4),
            "prompt_tok_s": round(len(tokens) / prompt_s, 1) if prompt_s else None,
            "generated_tokens": generated,
            "generation_s": round(gen_s, 4),
            "generation_tok_s": round(generated / gen_s, 1) if gen_s and generated else None,
            "text": out["choices"][0]["text"],
        }


def make_handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            return

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._send(status, {"error": {"message": message, "type": kind}})

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if self.path in ("/health", "/v1/health"):
                self._send(200, server.health())
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.args.model_name, "object": "model"}]})
            else:
                self._error(404, f"no such endpoint: {self.path}", "not_found")

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the request body must be a JSON object")
            except ValueError as exc:
                self._error(400, f"bad request: {exc}", "invalid_request_error")
                return
            try:
                if self.path in ("/v1/chat/completions", "/chat/completions"):
                    self._send(200, server.chat(body))
                elif self.path == "/selfheal/check":
                    self._send(200, server.check(body))
                else:
                    self._error(404, f"no such endpoint: {self.path}", "not_found")
            except ValueError as exc:  # llama-cpp-python's user errors (context overflow, bad tool_choice)
                self._error(400, str(exc), "invalid_request_error")
            except Exception as exc:  # noqa: BLE001 - reported to the client, the server keeps serving
                self._error(500, f"{type(exc).__name__}: {exc}", "server_error")

    return Handler


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m selfheal.models.local_server")
    p.add_argument("--model", required=True)
    p.add_argument("--model-name", default="local")
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tool-bias", type=float, default=1.0)
    p.add_argument("--max-tool-calls", type=int, default=1)
    p.add_argument("--state-dir", default=None)
    p.add_argument("--chat-format", default="selfheal-tools", help="selfheal-tools or a llama-cpp-python format")
    p.add_argument("--port", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    die_with_parent()
    try:
        server = ModelServer(args)
    except Exception as exc:  # noqa: BLE001 - the one line the parent shows
        print(json.dumps({"ready": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}),
              flush=True)
        return 3
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(server))
    httpd.daemon_threads = True
    print(json.dumps({"ready": True, "port": httpd.server_address[1], "pid": os.getpid(), **server.health()}),
          flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
