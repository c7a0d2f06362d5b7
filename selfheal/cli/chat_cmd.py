"""``selfheal chat``: an interactive session over the interact library (slash commands or plain words)."""

from __future__ import annotations

import click

from selfheal.cli.main import load_cli_settings


@click.command("chat")
@click.pass_context
def chat(ctx: click.Context) -> None:
    """Talk to selfheal: /ask, /explain, /teach, /cheatsheet, /review, /approve, /report, /help, /quit.

    Plain text is routed by the chat model to one of the commands. Ctrl-D leaves.
    """
    from selfheal.interact.chat import run_chat

    ctx.exit(run_chat(load_cli_settings(ctx)))
