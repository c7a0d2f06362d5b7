"""A template nested a few hundred levels deep is a ``file:line`` error, not a RecursionError.

Jinja parses and compiles recursively, and the Python it generates has its
own limits (20 nested loops, 200 nested parentheses); the depth is measured on
the lexer's tokens first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.context.model import AgentContext
from selfheal.context.render import MAX_BRACKET_DEPTH, MAX_TAG_CHAIN, MAX_TEMPLATE_DEPTH, render_system_prompt
from selfheal.errors import FileFormatError

DEEP = {
    "if": ("{% if task %}\n" * 300 + "x" + "{% endif %}" * 300, MAX_TEMPLATE_DEPTH + 1),
    "for": ("{% for e in entries %}\n" * 300 + "x" + "{% endfor %}" * 300, MAX_TEMPLATE_DEPTH + 1),
    "parens": ("\n{{ " + "(" * 300 + "task" + ")" * 300 + " }}", 2),
    "lists": ("{{ " + "[" * 300 + "1" + "]" * 300 + " }}", 1),
    "filters": ("{{ task" + "|lower" * 3000 + " }}", 1),
    "attributes": ("{{ task" + ".x" * 3000 + " }}", 1),
    "nots": ("{{ " + "not " * 3000 + "task }}", 1),
    "calls": ("{{ task" + ".upper()" * 300 + " }}", 1),
}


def _render(template: str, tmp_path: Path) -> str:
    ctx = AgentContext(version=1, system="system.md.j2", template=template, source_dir=tmp_path)
    return render_system_prompt(ctx, task="t", task_type="general", entries=[], tools=[])


@pytest.mark.parametrize("name", sorted(DEEP))
def test_deep_template_is_a_file_format_error_with_its_line(tmp_path: Path, name: str) -> None:
    template, line = DEEP[name]
    with pytest.raises(FileFormatError) as info:
        _render(template, tmp_path)
    assert info.value.path == tmp_path / "system.md.j2"
    assert info.value.line == line
    assert "nested deeper" in info.value.detail or "chained operators" in info.value.detail


@pytest.mark.parametrize(
    "template",
    [
        "{% if task %}" * MAX_TEMPLATE_DEPTH + "x" + "{% endif %}" * MAX_TEMPLATE_DEPTH,
        "{% for e in [1] %}" * MAX_TEMPLATE_DEPTH + "x" + "{% endfor %}" * MAX_TEMPLATE_DEPTH,
        "{% for e in [1] %}" * MAX_TEMPLATE_DEPTH + "{{ " + "(" * MAX_BRACKET_DEPTH + "task" + "|lower" * 29
        + ")" * MAX_BRACKET_DEPTH + " }}" + "{% endfor %}" * MAX_TEMPLATE_DEPTH,
        "{{ task" + "|lower" * MAX_TAG_CHAIN + " }}",
        "{{ " + "not " * MAX_TAG_CHAIN + "task }}",
    ],
    ids=["ifs", "fors", "mixed", "filters", "nots"],
)
def test_templates_at_the_limits_render(tmp_path: Path, template: str) -> None:
    _render(template, tmp_path)


def test_lint_reports_a_deep_template(tmp_path: Path) -> None:
    import shutil

    from selfheal.config import load_settings
    from selfheal.lint import lint_repository

    repo = Path(__file__).resolve().parents[1]
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(repo / name, tmp_path / name)
    template = tmp_path / "prompts" / "lambda_ops" / "system.md.j2"
    lines = template.read_text().count("\n")
    template.write_text(template.read_text() + "{% if task %}\n" * 300 + "{% endif %}" * 300)
    issues = [str(i) for i in lint_repository(load_settings(tmp_path, env={}), datasets=False)]
    where = f"prompts/lambda_ops/system.md.j2:{lines + MAX_TEMPLATE_DEPTH + 1}: blocks nested deeper than"
    assert any(i.startswith(where) for i in issues), issues
