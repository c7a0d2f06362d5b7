"""Other ways of asking the local model for a tool call, selectable by ``model.chat_format``.

selfheal's default protocol (:mod:`selfheal.models.llama_tools`: ``functions.NAME:``
then arguments, after a grammar-decided call-or-message step) was tuned on
ten questions. These are the alternatives it is compared with on the decision
probes (``selfheal model probe``, README "Tool-call protocols"):

* ``selfheal-think`` — the same protocol with one free ``Thought:`` line
  before the decision (:class:`~selfheal.models.llama_tools.ToolCallingChatHandler`
  with ``think=True``).
* ``selfheal-json`` — one JSON decision, ``{"tool": NAME, "arguments": {...}}``
  or ``{"answer": TEXT}``: the opening key is chosen under a grammar, the tool
  name under an enum grammar, the arguments written freely and re-generated
  under the tool's JSON-schema grammar when they do not fit.
* ``qwen-native`` — the model's own chat template for tools (Qwen2.5's
  ``<tools>`` block, ``<tool_call>`` tags, ``<tool_response>`` turns),
  generated freely and parsed the way the model actually answers: tags,
  fenced JSON, or a bare ``{"name": ..., "arguments": ...}`` object.
* ``qwen-guided`` — the same template, with the decisions read from the
  model's probabilities: call or answer from the mass of the next token on a
  call's opening (``<tool_call>``, ``{``, a fence; whitespace and turn markers
  left out), plus ``model.tool_bias``; then ``<tool_call>`` and ``{"name": "``
  are written for it, the tool is the name whose whole spelling is most
  likely, and the arguments are checked as in ``selfheal-tools``.

Every handler is a llama-cpp-python ``chat_handler``: OpenAI-shaped messages in,
an OpenAI-shaped chat completion out; rendering and parsing are pure functions.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from selfheal.models.llama_tools import (
    IM_END,
    IM_START,
    SELFHEAL_CHAT_FORMAT,
    Completer,
    ToolCallingChatHandler,
    checked_args,
    _gbnf_literal,
    _normalize_choice,
    _text,
    _tool_fn,
    completion_response,
    compact_schema,
    first_json_object,
    name_under_grammar,
    tool_call_dict,
)

THINK_CHAT_FORMAT = "selfheal-think"
JSON_CHAT_FORMAT = "selfheal-json"
NATIVE_CHAT_FORMAT = "qwen-native"
GUIDED_CHAT_FORMAT = "qwen-guided"
#: chat formats served by selfheal's own handlers (anything else is a llama-cpp-python format)
SELFHEAL_FORMATS = (SELFHEAL_CHAT_FORMAT, THINK_CHAT_FORMAT, JSON_CHAT_FORMAT, NATIVE_CHAT_FORMAT,
                    GUIDED_CHAT_FORMAT)

_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "typical_p", "presence_penalty", "frequency_penalty",
                  "repeat_penalty", "seed")


def make_chat_handler(chat_format: str, *, tool_bias: float = 1.0, max_calls: int = 1) -> Any:
    """The handler serving ``chat_format``, or None for a llama-cpp-python format."""
    if chat_format == SELFHEAL_CHAT_FORMAT:
        return ToolCallingChatHandler(tool_bias=tool_bias, max_calls=max_calls)
    if chat_format == THINK_CHAT_FORMAT:
        return ToolCallingChatHandler(tool_bias=tool_bias, max_calls=max_calls, think=True)
    if chat_format == JSON_CHAT_FORMAT:
        return JsonDecisionHandler()
    if chat_format == NATIVE_CHAT_FORMAT:
        return QwenNativeHandler()
    if chat_format == GUIDED_CHAT_FORMAT:
        return GuidedNativeHandler(tool_bias=tool_bias)
    return None


def _sampling(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    defaults = {"temperature": 0.0, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "typical_p": 1.0,
                "presence_penalty": 0.0, "frequency_penalty": 0.0, "repeat_penalty": 1.0, "seed": None}
    return {k: kwargs.get(k, defaults[k]) if kwargs.get(k) is not None else defaults[k] for k in _SAMPLING_KEYS}


def _stops(stop: Any) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _tools_of(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    tools = list(kwargs.get("tools") or [])
    choice = kwargs.get("tool_choice")
    if kwargs.get("functions") and not tools:
        tools = [{"type": "function", "function": f} for f in kwargs["functions"]]
        choice = kwargs.get("function_call") if choice is None else choice
    return tools, choice


def _tool_request(kwargs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str], str, str | None]:
    """(tools, their names, mode, forced name) of a chat request, as every handler here reads it."""
    tools, choice = _tools_of(kwargs)
    names = [str(_tool_fn(t)["name"]) for t in tools]
    mode, forced = _normalize_choice(choice, names) if tools else ("none", None)
    return tools, names, mode, forced


# -- selfheal-json ------------------------------------------------------------------------------

_JSON_RULES = (
    "\n\nRespond with exactly one JSON object and nothing else:\n"
    '{"tool": "<function name>", "arguments": {<its arguments>}} to call a function, or\n'
    '{"answer": "<your reply>"} to reply to the user when no function applies or the results already answer it.'
)


def json_tools_block(tools: Sequence[Mapping[str, Any]]) -> str:
    lines = ["You have access to the following functions:\n"]
    for tool in tools:
        fn = _tool_fn(tool)
        desc = str(fn.get("description") or "").strip()
        params = compact_schema(fn.get("parameters") or {"type": "object", "properties": {}})
        lines.append(f"\n{fn['name']}:" + (f" {desc}" if desc else ""))
        lines.append("\n" + json.dumps(params, ensure_ascii=False, separators=(",", ":")) + "\n")
    return "".join(lines) + _JSON_RULES


def render_json_prompt(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> str:
    """ChatML with the tools first; every assistant turn is one JSON decision, results are user turns."""
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    out = [f"{IM_START}system\n{json_tools_block(tools)}" + (f"\n\n{system}" if system else "") + f"{IM_END}\n"]
    names: dict[str, str] = {}
    pending: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "tool":
            name = m.get("name") or names.get(str(m.get("tool_call_id")), "function")
            pending.append(f"Result of {name}:\n{_text(m.get('content'))}")
            continue
        if pending:
            out.append(f"{IM_START}user\n" + "\n\n".join(pending) + f"{IM_END}\n")
            pending.clear()
        if role == "assistant":
            turns = []
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                names[str(call.get("id"))] = fn.get("name", "")
                args = fn.get("arguments", {})
                args_obj = json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args
                turns.append(json.dumps({"tool": fn.get("name", ""), "arguments": args_obj}, ensure_ascii=False))
            if not turns:
                turns.append(json.dumps({"answer": _text(m.get("content"))}, ensure_ascii=False))
            out.append(f"{IM_START}assistant\n" + "\n".join(turns) + f"{IM_END}\n")
        else:
            out.append(f"{IM_START}user\n{_text(m.get('content'))}{IM_END}\n")
    if pending:
        out.append(f"{IM_START}user\n" + "\n\n".join(pending) + f"{IM_END}\n")
    out.append(f"{IM_START}assistant\n")
    return "".join(out)


class JsonDecisionHandler:
    """One JSON object decides: which key opens it (grammar), which tool (enum grammar), which arguments."""

    def prefix(self, tools: Sequence[Mapping[str, Any]]) -> str:
        return f"{IM_START}system\n{json_tools_block(tools)}"

    def __call__(self, *, llama: Any, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        from llama_cpp import LlamaGrammar

        tools, names, mode, forced = _tool_request(kwargs)
        if mode == "none":  # no tools: selfheal's plain ChatML path
            return ToolCallingChatHandler()(llama=llama, messages=messages, **kwargs)
        complete = Completer(llama, _sampling(kwargs), _stops(kwargs.get("stop")))
        limit = kwargs.get("max_tokens")
        prompt = render_json_prompt(messages, tools)
        tool_open, answer_open = '{"tool": "', '{"answer": "'
        if mode == "auto":
            gbnf = LlamaGrammar.from_string(f"root ::= {_gbnf_literal(tool_open)} | {_gbnf_literal(answer_open)}\n",
                                            verbose=False)
            first, _ = complete(prompt, limit=None, gbnf=gbnf, greedy=True)
        else:
            first = tool_open
        if first.startswith('{"answer'):
            text, fin = complete(prompt + answer_open, limit=limit, extra_stop=['"}'])
            try:
                content = json.loads(f'"{text}"')
            except ValueError:
                content = text
            return completion_response(llama, content.strip(), [], fin, complete.usage)
        cursor = prompt + tool_open
        if forced:
            name = forced
        else:
            name = name_under_grammar(complete, cursor, names)
        cursor += f'{name}", "arguments": '
        args, fin = checked_args(complete, cursor, tools[names.index(name)], limit, [])
        return completion_response(llama, None, [tool_call_dict(name, args)],
                                   "length" if fin == "length" else "tool_calls", complete.usage)


# -- qwen-native ----------------------------------------------------------------------------------

_NATIVE_TOOLS = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_NATIVE_FORMAT = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call>"
)
_QWEN_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def render_native_prompt(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> str:
    """Qwen2.5's own chat template for tools (its ``tokenizer.chat_template``, written out)."""
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    system = system or _QWEN_DEFAULT_SYSTEM
    if tools:
        system += _NATIVE_TOOLS + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools) + _NATIVE_FORMAT
    out = [f"{IM_START}system\n{system}{IM_END}\n"]
    pending: list[str] = []
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        if role == "tool":
            pending.append(f"<tool_response>\n{_text(m.get('content'))}\n</tool_response>")
            continue
        if pending:
            out.append(f"{IM_START}user\n" + "\n".join(pending) + f"{IM_END}\n")
            pending.clear()
        if role == "assistant":
            body = _text(m.get("content"))
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                args = fn.get("arguments", {})
                args_obj = json.loads(args) if isinstance(args, str) and args.strip().startswith("{") else args
                body += ("\n" if body else "") + "<tool_call>\n" + json.dumps(
                    {"name": fn.get("name", ""), "arguments": args_obj}, ensure_ascii=False) + "\n</tool_call>"
            out.append(f"{IM_START}assistant\n{body}{IM_END}\n")
        else:
            out.append(f"{IM_START}user\n{_text(m.get('content'))}{IM_END}\n")
    if pending:
        out.append(f"{IM_START}user\n" + "\n".join(pending) + f"{IM_END}\n")
    out.append(f"{IM_START}assistant\n")
    return "".join(out)


def parse_native_reply(text: str, tool_names: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
    """(content, calls) from what the model wrote: ``<tool_call>`` tags, fenced JSON or a bare object.

    An object counts as a call only when its ``name`` is a bound tool.
    """
    known = set(tool_names)
    candidates = _TAGGED.findall(text) or _FENCED.findall(text)
    if not candidates:
        obj = first_json_object(text)
        candidates = [json.dumps(obj)] if obj is not None else []
    calls: list[tuple[str, str]] = []
    for raw in candidates:
        obj = first_json_object(raw)
        if not obj or obj.get("name") not in known:
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        calls.append((str(obj["name"]), args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)))
    if not calls:
        return text.strip(), []
    content = _TAGGED.sub("", _FENCED.sub("", text)).strip()
    return ("" if content.startswith("{") else content), calls


class QwenNativeHandler:
    """The model's own tool template, generated freely, parsed the way the model answers."""

    def prefix(self, tools: Sequence[Mapping[str, Any]]) -> str:
        return f"{IM_START}system\n"  # the agent's system text comes before the tools in this template

    def __call__(self, *, llama: Any, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        tools, names, mode, forced = _tool_request(kwargs)
        if mode == "none":
            return ToolCallingChatHandler()(llama=llama, messages=messages, **kwargs)
        complete = Completer(llama, _sampling(kwargs), _stops(kwargs.get("stop")))
        limit = kwargs.get("max_tokens")
        prompt = render_native_prompt(messages, tools)
        if mode == "named" and forced:
            cursor = prompt + '<tool_call>\n{"name": "' + forced + '", "arguments": '
            args, fin = checked_args(complete, cursor, tools[names.index(forced)], limit, ["</tool_call>"])
            return completion_response(llama, None, [tool_call_dict(forced, args)], "tool_calls", complete.usage)
        start = "<tool_call>\n" if mode == "required" else ""
        text, fin = complete(prompt + start, limit=limit)
        content, calls = parse_native_reply(start + text, names)
        tool_calls = [tool_call_dict(n, a) for n, a in calls]
        if calls and fin != "length":
            fin = "tool_calls"
        return completion_response(llama, content, tool_calls, fin, complete.usage)


# -- qwen-guided ----------------------------------------------------------------------------------

#: how the model opens a call in its own template: the tag, or the JSON object it often writes bare or fenced
_CALL_OPENINGS = ("<tool_call", "{", "```")
_CONTROL = re.compile(r"<\|[a-z_]+\|>")
_call_tokens: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def decision_masks(llama: Any) -> tuple[Any, Any]:
    """Two boolean rows over the vocabulary: tokens that open a call, and tokens that decide nothing (once per model).

    Whitespace and turn markers decide nothing: the embedded model often
    writes a newline and then ``{"name": ...``, and after a tool response it
    puts most of its mass on ``<|im_start|>`` (another turn), so those tokens
    are left out of the decision.
    """
    import numpy as np

    masks = _call_tokens.get(llama)
    if masks is None:
        n = int(llama.n_vocab())
        opens, blank = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in range(n):
            try:
                piece = llama.detokenize([i], special=True).decode("utf-8", "ignore")
            except Exception:  # noqa: BLE001 - a token with no text opens nothing
                continue
            opens[i] = piece.lstrip().startswith(_CALL_OPENINGS)
            blank[i] = (bool(piece) and not piece.strip()) or _CONTROL.fullmatch(piece) is not None
        masks = (opens, blank)
        _call_tokens[llama] = masks
    return masks


def call_probability(logits: Any, mask: Any, neutral: Any = None) -> float:
    """P(the next token opens a call) under the softmax of ``logits``, ``neutral`` tokens left out."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    p = np.exp(row - row.max())
    if neutral is not None:
        p[np.asarray(neutral, dtype=bool)] = 0.0
    total = float(p.sum())
    return float(p[np.asarray(mask, dtype=bool)].sum()) / total if total > 0 else 0.0


def decide_to_call(p_call: float, *, tool_bias: float, temperature: float = 0.0, seed: int | None = None) -> bool:
    """Call when the log-odds of a call, plus the bias, favour it; sampled (seeded) at a temperature."""
    import math
    import random

    p = min(max(p_call, 1e-9), 1 - 1e-9)
    logit = math.log(p / (1 - p)) + tool_bias
    if temperature <= 0:
        return logit > 0
    return random.Random(seed).random() < 1 / (1 + math.exp(-logit / temperature))


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    row = np.asarray(logits, dtype=np.float64)
    shifted = row - row.max()
    return shifted - np.log(np.exp(shifted).sum())


#: what follows a name in the template: scored with it (``",`` is one token; a lone ``"`` is not how the model writes it)
NAME_END = '",'


def rank_names(complete: Completer, llama: Any, cursor: str, names: Sequence[str]) -> dict[str, float]:
    """Each name's log-probability as the model's own continuation of ``cursor`` (with :data:`NAME_END`).

    Scored whole (the likelihood of the full spelling), so a first token the
    model likes but would not continue into that name does not decide, as it
    would in a greedy walk. Shared token prefixes are evaluated once (one
    forward step per distinct prefix, the prompt's KV cache reused). Empty
    when the names do not tokenize on the cursor's boundary (the caller then
    picks greedily).
    """
    base = list(llama.tokenize(cursor.encode("utf-8"), special=True))
    seqs: dict[str, list[int]] = {}
    for name in names:
        full = list(llama.tokenize((cursor + name + NAME_END).encode("utf-8"), special=True))
        if full[: len(base)] != base or len(full) == len(base):
            return {}
        seqs[name] = full[len(base):]
    rows: dict[tuple[int, ...], Any] = {}
    scores: dict[str, float] = {}
    for name, seq in seqs.items():
        total = 0.0
        for i, token in enumerate(seq):
            prefix = tuple(seq[:i])
            if prefix not in rows:
                rows[prefix] = _log_softmax(complete.next_logits(base + list(prefix)))
            total += float(rows[prefix][token])
        scores[name] = total
    return scores


def pick_name(scores: Mapping[str, float], *, temperature: float = 0.0, seed: int | None = None) -> str:
    """The most likely name; at a temperature, one drawn from their likelihoods (seeded: recordings replay)."""
    import math
    import random

    if temperature <= 0:
        return max(scores, key=lambda n: scores[n])
    top = max(scores.values())
    weights = [math.exp((v - top) / temperature) for v in scores.values()]
    return random.Random(seed).choices(list(scores), weights=weights)[0]


class GuidedNativeHandler:
    """The model's own tool template, the decisions read from its probabilities (see module doc).

    Found on the decision probes: after selfheal's ``functions.`` opening the
    embedded model puts P > 0.99 on ``escalate_order`` in every helpdesk state
    read (even where the policy says to look the order up), while after its
    own ``<tool_call>`` opening it spreads its mass over the tools. Freely
    generated, the same template often yields fenced or bare JSON, so the
    opening is written for the model once it has chosen to call.
    """

    def __init__(self, *, tool_bias: float = 1.0) -> None:
        self.tool_bias = tool_bias

    prefix = QwenNativeHandler.prefix  # the same template, so the same fixed prefix

    @staticmethod
    def _message(llama: Any, complete: Completer, prompt: str, limit: int | None) -> str:
        """The answer, once the model chose to answer: its first token may not open a call (nor be blank)."""
        import numpy as np

        opens, blank = decision_masks(llama)
        blocked = {int(i): -100.0 for i in np.flatnonzero(opens | blank)}
        first, fin = complete(prompt, limit=1, bias=blocked)
        if fin != "length" or (limit is not None and limit <= 1):
            return first.strip()
        rest, _ = complete(prompt + first, limit=None if limit is None else limit - 1)
        return (first + rest).strip()

    def __call__(self, *, llama: Any, messages: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        tools, names, mode, forced = _tool_request(kwargs)
        if mode == "none":
            return ToolCallingChatHandler()(llama=llama, messages=messages, **kwargs)
        sampling = _sampling(kwargs)
        complete = Completer(llama, sampling, _stops(kwargs.get("stop")))
        limit = kwargs.get("max_tokens")
        prompt = render_native_prompt(messages, tools)
        if mode == "auto":
            p_call = call_probability(complete.next_logits(prompt), *decision_masks(llama))
            if not decide_to_call(p_call, tool_bias=self.tool_bias, temperature=float(sampling["temperature"]),
                                  seed=sampling["seed"]):
                return completion_response(llama, self._message(llama, complete, prompt, limit), [], "stop",
                                           complete.usage)
        cursor = prompt + '<tool_call>\n{"name": "'
        name = forced
        if name is None:
            ranked = rank_names(complete, llama, cursor, names)
            if ranked:
                name = pick_name(ranked, temperature=float(sampling["temperature"]), seed=sampling["seed"])
            else:
                name = name_under_grammar(complete, cursor, names)
        cursor += f'{name}", "arguments": '
        args, fin = checked_args(complete, cursor, tools[names.index(name)], limit, ["</tool_call>"])
        return completion_response(llama, None, [tool_call_dict(name, args)],
                                   "length" if fin == "length" else "tool_calls", complete.usage)
