"""Run the ``selfheal`` command in-process as a user would: exit code, stdout and stderr."""

from __future__ import annotations

import pytest

from selfheal.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``selfheal ARGS``: (exit code, stdout, stderr), through the console entry point's error handling."""
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err
