"""Tool-call protocols side by side on the decision probes, with the embedded model.

    python bench/decisions/compare.py [--per-agent 24] [--protocols a,b] [--cache record|replay]

Each protocol runs on the same probes (an even spread of ``--per-agent`` probes
of every agent), one after the other, through selfheal's model process. Each
protocol's decisions go to ``bench/results/decisions/<protocol>.json`` and the
table (tool / argument / answer / whole-step accuracy with Wilson 95%
intervals, tokens and seconds per decision) is printed as Markdown for the
README. With ``--cache record`` the responses are kept in
``evals/decisions/replay/`` so the table can be re-derived offline
(``--cache replay``; tests/test_decision_probes.py replays it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from selfheal import load_settings  # noqa: E402
from selfheal.evaluation.probe_report import ProbeReport  # noqa: E402
from selfheal.evaluation.probe_runner import environment_verifier, summarize_groups  # noqa: E402
from selfheal.evaluation.probes import Probe, load_probes, select_probes  # noqa: E402

#: name -> model settings
PROTOCOLS: dict[str, dict[str, object]] = {
    "selfheal-tools": {"chat_format": "selfheal-tools", "tool_bias": 1.0},
    "selfheal-tools-nobias": {"chat_format": "selfheal-tools", "tool_bias": 0.0},
    "selfheal-think": {"chat_format": "selfheal-think", "tool_bias": 1.0},
    "selfheal-json": {"chat_format": "selfheal-json", "tool_bias": 1.0},
    "qwen-native": {"chat_format": "qwen-native", "tool_bias": 1.0},
    "selfheal-tools-compact": {"chat_format": "selfheal-tools", "tool_bias": 1.0, "tool_descriptions": "compact"},
    "qwen-guided": {"chat_format": "qwen-guided", "tool_bias": 0.0},
    "qwen-guided-bias1": {"chat_format": "qwen-guided", "tool_bias": 1.0},
}
PROBES = ROOT / "evals" / "decisions"
CACHE = "evals/decisions/replay"
OUT = ROOT / "bench" / "results" / "decisions"


def sample(per_agent: int, agents: list[str] | None = None) -> list[Probe]:
    """The same probes for every protocol: an even spread of each agent's probes."""
    probes = load_probes([PROBES])
    out: list[Probe] = []
    for agent in sorted({p.agent for p in probes}):
        if agents and agent not in agents:
            continue
        out += select_probes(probes, agents=[agent], limit=per_agent)
    return out


def run(name: str, probes: list[Probe], cache: str) -> ProbeReport:
    """One protocol on ``probes``. ``record`` reuses what the cache already holds and records the rest."""
    from selfheal.evaluation.probe_runner import decide
    from selfheal.evaluation.probes import score_decision
    from selfheal.models.providers import make_chat_model, model_identity

    def settings_for(mode: str) -> object:
        return load_settings(ROOT, overrides={"model": {**PROTOCOLS[name], "cache_mode": mode, "cache_dir": CACHE,
                                                        "provider": "local", "timeout_s": 1800}})

    settings = settings_for(cache)
    replay = make_chat_model(settings_for("replay"))
    live = make_chat_model(settings) if cache != "replay" else replay
    verifier = environment_verifier(settings)
    started = time.perf_counter()
    scores = []
    for i, probe in enumerate(probes, 1):
        decision = decide(replay, probe)
        if decision.error.startswith("replay: no recorded response") and live is not replay:
            decision = decide(live, probe)
        verified = (verifier(probe, decision)
                    if probe.expect.verify and decision.tool in probe.expect.tools else None)
        s = score_decision(probe, decision, verified=verified)
        scores.append(s)
        print(f"[{name} {i}/{len(probes)}] {'ok ' if s.correct else 'BAD'} {s.probe_id}: "
              f"{s.decision.tool or 'answer'} ({s.decision.seconds:.1f} s){' ' + s.decision.error if s.decision.error else ''}",
              file=sys.stderr, flush=True)
    return ProbeReport(model=model_identity(settings), chat_format=settings.model.chat_format,
                       tool_bias=settings.model.tool_bias, tool_descriptions=settings.model.tool_descriptions,
                       probe_files=["evals/decisions"],
                       wall_seconds=round(time.perf_counter() - started, 1), summaries=summarize_groups(scores),
                       scores=scores)


def markdown(reports: dict[str, ProbeReport]) -> str:
    groups = [s.group for s in next(iter(reports.values())).summaries]
    lines = ["| protocol | group | n | tool | args | answer | whole step | tok/dec | s/dec |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, rep in reports.items():
        by = {s.group: s for s in rep.summaries}
        for g in groups:
            s = by.get(g)
            if s is None:
                continue
            lines.append(f"| {name} | {g} | {s.n} | {s.tool} | {s.args} | {s.answer} | {s.step} | "
                         f"{s.tokens_per_decision:.0f} | {s.seconds_per_decision:.1f} |")
    return "\n".join(lines)


def on_common_probes(reports: dict[str, ProbeReport]) -> dict[str, ProbeReport]:
    """Every report cut to the probes all of them decided, summaries recomputed: a fair side by side."""
    common = set.intersection(*({s.probe_id for s in r.scores} for r in reports.values()))
    out = {}
    for name, rep in reports.items():
        scores = [s for s in rep.scores if s.probe_id in common]
        out[name] = rep.model_copy(update={"scores": scores, "summaries": summarize_groups(scores)})
    return out


def _merged(rep: ProbeReport, path: Path) -> ProbeReport:
    """``rep`` plus the decisions an earlier run saved at ``path`` for probes ``rep`` did not decide.

    Its ``wall_seconds`` is this run's plus the kept decisions' own seconds, so
    the report's time covers every decision it holds (not only the new run's).
    """
    if not path.is_file():
        return rep
    old = ProbeReport.model_validate_json(path.read_text())
    mine = {s.probe_id for s in rep.scores}
    kept = [s for s in old.scores if s.probe_id not in mine]
    scores = kept + rep.scores
    wall = round(rep.wall_seconds + sum(s.decision.seconds for s in kept), 1)
    return rep.model_copy(update={"scores": scores, "summaries": summarize_groups(scores), "wall_seconds": wall})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-agent", type=int, default=24)
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--cache", choices=["off", "record", "replay"], default="record")
    ap.add_argument("--table-only", action="store_true", help="only print the table of the saved results")
    ap.add_argument("--agents", default="", help="only these agents' probes (comma-separated)")
    args = ap.parse_args()
    names = args.protocols.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.table_only:
        probes = sample(args.per_agent, [a for a in args.agents.split(",") if a])
        for name in names:
            rep = run(name, probes, args.cache)
            if args.agents:  # keep what an earlier, wider run decided for the other agents
                rep = _merged(rep, OUT / f"{name}.json")
            (OUT / f"{name}.json").write_text(json.dumps(rep.model_dump(mode="json"), indent=1) + "\n")
            print(markdown({name: rep}), flush=True)
    reports = {n: ProbeReport.model_validate_json((OUT / f"{n}.json").read_text()) for n in names
               if (OUT / f"{n}.json").is_file()}
    print("\n" + markdown(on_common_probes(reports)))


if __name__ == "__main__":
    main()
