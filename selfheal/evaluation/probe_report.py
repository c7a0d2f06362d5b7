"""One protocol scored on a probe set: the report ``selfheal model probe`` prints and writes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from selfheal.errors import ConfigError
from selfheal.evaluation.probe_runner import ProbeSummary, environment_verifier, run_probes, summarize_groups
from selfheal.evaluation.probes import ProbeScore, load_probes, select_probes

if TYPE_CHECKING:
    from selfheal.config import Settings

DEFAULT_PROBES = "decisions"  # under the evals directory


class ProbeReport(BaseModel):
    """Which model and protocol, on which probes, how it did (summaries first, then every decision)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    chat_format: str
    tool_bias: float
    tool_descriptions: str = "full"
    probe_files: list[str]
    wall_seconds: float
    summaries: list[ProbeSummary]
    scores: list[ProbeScore]


def probe_protocol(
    settings: Settings,
    paths: Sequence[str] = (),
    *,
    agents: Sequence[str] = (),
    tags: Sequence[str] = (),
    limit: int | None = None,
    on_score: Callable[[ProbeScore], None] | None = None,
    out: str | None = None,
) -> ProbeReport:
    """Run the configured chat model (with its record/replay cache) on the selected probes."""
    from selfheal.models.providers import make_chat_model, model_identity
    from selfheal.yamlio import atomic_write_text

    files = [settings.path(p) for p in paths] or [settings.path(settings.paths.evals) / DEFAULT_PROBES]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise ConfigError(f"no probe file or folder: {', '.join(missing)}")
    probes = select_probes(load_probes(files), agents=agents, tags=tags, limit=limit)
    if not probes:
        raise ConfigError("no probe matches the given --only/--tag filters")
    model = make_chat_model(settings)
    started = time.perf_counter()
    scores = run_probes(model, probes, verifier=environment_verifier(settings), on_score=on_score)
    report = ProbeReport(
        model=model_identity(settings),
        chat_format=settings.model.chat_format,
        tool_bias=settings.model.tool_bias,
        tool_descriptions=settings.model.tool_descriptions,
        probe_files=[str(Path(f).relative_to(settings.root)) if Path(f).is_relative_to(settings.root) else str(f)
                     for f in files],
        wall_seconds=round(time.perf_counter() - started, 1),
        summaries=summarize_groups(scores),
        scores=scores,
    )
    if out:
        atomic_write_text(settings.path(out), json.dumps(report.model_dump(mode="json"), indent=1) + "\n")
    return report


def render_probe_table(report: ProbeReport) -> str:
    """A plain-text table: one row per group (all, per agent, per decision kind)."""
    head = f"model {report.model}  protocol {report.chat_format}  tool bias {report.tool_bias:g}"
    if report.tool_descriptions != "full":
        head += f"  tool descriptions {report.tool_descriptions}"
    cols = ("group", "n", "tool", "args", "answer", "whole step", "err", "tok/dec", "s/dec")
    rows = [cols] + [
        (s.group, str(s.n), str(s.tool), str(s.args), str(s.answer), str(s.step), str(s.errors),
         f"{s.tokens_per_decision:.0f}", f"{s.seconds_per_decision:.1f}")
        for s in report.summaries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head, ""] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines) + f"\n\n{len(report.scores)} decisions in {report.wall_seconds:.0f} s"
