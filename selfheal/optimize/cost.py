"""What optimizing cost: model calls, tokens and wall time per phase.

An optimizer that makes the agent 5 points better for 3 hours of a GPU is a
different proposal from one that does it in 4 minutes: the report and the PR
body say which. Learning roles are metered by a LangChain callback (every chat
call they make); agent runs by their experiment results (steps and tokens).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler


@dataclass
class PhaseCost:
    phase: str
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    runs: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _usage(response: Any) -> tuple[int, int]:
    """(prompt, completion) tokens of one LLMResult, from whichever field the provider filled."""
    out = (response.llm_output or {}).get("token_usage") if getattr(response, "llm_output", None) else None
    if isinstance(out, dict) and out:
        return int(out.get("prompt_tokens") or 0), int(out.get("completion_tokens") or 0)
    p = c = 0
    for gens in getattr(response, "generations", []) or []:
        for g in gens:
            meta = getattr(getattr(g, "message", None), "usage_metadata", None) or {}
            p += int(meta.get("input_tokens") or 0)
            c += int(meta.get("output_tokens") or 0)
    return p, c


class CostMeter(BaseCallbackHandler):
    """Per-phase accounting; pass it as a callback to the learning roles' model calls."""

    def __init__(self) -> None:
        super().__init__()
        self.phases: dict[str, PhaseCost] = {}
        self.current = "other"

    def _phase(self, name: str | None = None) -> PhaseCost:
        key = name or self.current
        return self.phases.setdefault(key, PhaseCost(key))

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseCost]:
        previous, self.current = self.current, name
        started = time.perf_counter()
        try:
            yield self._phase(name)
        finally:
            self._phase(name).wall_s += time.perf_counter() - started
            self.current = previous

    # LangChain callbacks -------------------------------------------------------------
    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self._phase().model_calls += 1

    def on_llm_end(self, response: Any, **kwargs: Any) -> None:
        p, c = _usage(response)
        ph = self._phase()
        ph.prompt_tokens += p
        ph.completion_tokens += c

    # agent runs ---------------------------------------------------------------------------
    def add_experiment(self, result: Any, phase: str | None = None) -> None:
        """Count an experiment's agent runs: one model call per step, their tokens."""
        ph = self._phase(phase)
        for r in result.results:
            ph.runs += 1
            ph.model_calls += max(int(r.steps), 0)
            ph.prompt_tokens += int(r.prompt_tokens)
            ph.completion_tokens += int(r.completion_tokens or max(r.total_tokens - r.prompt_tokens, 0))

    def add_traces(self, store_path: Path, run_ids: Sequence[str], phase: str | None = None) -> None:
        """Count traced runs: every model call of their traces (the agent's and its online learner's).

        An online-learning run reflects and curates inside the graph, with the
        agent's model, so its experiment row (agent steps) misses those calls;
        the local trace store has them all, one ``llm`` run each.
        """
        from selfheal.tracing.analysis import run_tokens
        from selfheal.tracing.store import LocalTraceStore

        ph = self._phase(phase)
        if not run_ids or not store_path.exists():
            return
        with LocalTraceStore(store_path) as store:
            for run_id in run_ids:
                runs = store.get_trace(run_id)
                if runs:
                    ph.runs += 1
                for run in runs:
                    if run.run_type != "llm":
                        continue
                    ph.model_calls += 1
                    prompt, completion, _ = run_tokens(run) or (0, 0, 0)
                    ph.prompt_tokens += prompt
                    ph.completion_tokens += completion

    @property
    def total(self) -> PhaseCost:
        t = PhaseCost("total")
        for p in self.phases.values():
            t.model_calls += p.model_calls
            t.prompt_tokens += p.prompt_tokens
            t.completion_tokens += p.completion_tokens
            t.wall_s += p.wall_s
            t.runs += p.runs
        return t

    def rows(self) -> list[PhaseCost]:
        return [*self.phases.values(), self.total]

    def markdown(self) -> str:
        lines = ["| phase | agent runs | model calls | tokens (prompt + completion) | wall time |",
                 "|---|---|---|---|---|"]
        for p in self.rows():
            lines.append(f"| {p.phase} | {p.runs} | {p.model_calls} | {p.tokens} ({p.prompt_tokens} + "
                         f"{p.completion_tokens}) | {p.wall_s:.1f} s |")
        return "\n".join(lines)

    def to_dict(self) -> list[dict[str, Any]]:
        return [{**asdict(p), "tokens": p.tokens} for p in self.rows()]
