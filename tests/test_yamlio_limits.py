"""Hostile or broken YAML gets ``file:line: message`` (FileFormatError), never a hang or a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfheal.errors import FileFormatError
from selfheal.yamlio import MAX_ALIAS_NODES, MAX_DEPTH, parse_yaml, read_yaml

REPO = Path(__file__).resolve().parents[1]

#: "Billion laughs": 9 levels of 9 aliases, 9**9 strings once expanded, a few hundred bytes.
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)


def _error(text: str) -> FileFormatError:
    with pytest.raises(FileFormatError) as info:
        parse_yaml(text, "f.yaml")
    return info.value


def test_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = tmp_path / "context.yaml"
    path.write_text(BOMB)
    with pytest.raises(FileFormatError) as info:
        read_yaml(path)
    assert str(info.value).startswith(f"{path}:")
    assert f"aliases expand to more than {MAX_ALIAS_NODES} values" in str(info.value)
    assert info.value.line is not None and info.value.line <= 5  # caught at the first big level


def test_ordinary_aliases_and_merge_keys_still_read() -> None:
    data = parse_yaml("base: &base {timeout: 3, memory: 128}\nfn: {<<: *base, memory: 256}\nids: &ids [a, b]\nalso: *ids\n")
    assert dict(data["fn"]) == {"memory": 256, "timeout": 3} and list(data["also"]) == ["a", "b"]


def test_alias_to_its_own_container_is_refused() -> None:
    assert "refers to a collection containing it" in str(_error("a: &a [1, *a]\n"))


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    ok = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert parse_yaml(ok) is not None
    for deep in ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "[" * 100_000, "{a: " * 50_000):
        assert f"nested deeper than {MAX_DEPTH} levels" in str(_error(deep))
    block = "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 500))
    err = _error(block)
    assert err.line == MAX_DEPTH and "nested deeper" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("id: x\ncreated: 2026-02-30\n", 2, "cannot read '2026-02-30' as timestamp: day is out of range for month"),
        ("created: 2026-13-01T00:00:00Z\n", 1, "cannot read '2026-13-01T00:00:00Z' as timestamp"),
        ("n: !!int twelve\n", 1, "cannot read 'twelve' as int"),
        ("flag: !!bool maybe\n", 1, "cannot read 'maybe' as bool"),
        ("a: 1\n? [x, y]\n: 2\n", 2, "a mapping key must be a plain value, not a list or mapping"),
        ("a: 1\n? {x: 1}\n: 2\n", 2, "a mapping key must be a plain value, not a list or mapping"),
        ("{[x]: 1}\n", 1, "a mapping key must be a plain value"),
    ],
)
def test_impossible_values_and_complex_keys_name_file_and_line(text: str, line: int, message: str) -> None:
    err = _error(text)
    assert err.line == line and message in err.detail
    assert str(err).startswith(f"f.yaml:{line}: invalid YAML: ")


def test_cli_lint_and_run_on_a_bomb_context(tmp_path: Path) -> None:
    """``selfheal lint`` / ``run`` on a repo whose context.yaml is the bomb: one line naming the file, no hang."""
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    (tmp_path / "prompts" / "lambda_ops" / "context.yaml").write_text(BOMB)
    cli = [sys.executable, "-c", "from selfheal.cli.main import main; main()", "-C", str(tmp_path)]

    lint = subprocess.run([*cli, "lint"], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 1, lint.stderr
    bad = [line for line in lint.stdout.splitlines() if "context.yaml" in line]
    assert bad == ["prompts/lambda_ops/context.yaml:5: invalid YAML: aliases expand to more than 10000 values"]
    assert "Traceback" not in lint.stdout + lint.stderr

    run = subprocess.run([*cli, "run", "a task"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    # run refuses up front with lint's line (the loader would raise the same error on its own)
    assert run.stderr.strip().splitlines() == [
        "error: prompts/lambda_ops/context.yaml:5: invalid YAML: aliases expand to more than 10000 values"
        " (`selfheal lint` checks every file)"
    ]
