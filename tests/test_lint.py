"""``lint_repository``: every problem as ``path:line: message``, relative to the repo root."""

from __future__ import annotations

import shutil
from pathlib import Path

from lambda_ops.tools import TOOL_NAMES
from selfheal.config import Settings, load_settings
from selfheal.lint import LintIssue, lint_repository

REPO = Path(__file__).resolve().parents[1]
TOOLS = set(TOOL_NAMES)

GOOD_CONTEXT = """\
version: 1
system: system.md.j2
instructions:
  - id: ins-a
    text: Read the configuration with get_function_configuration first.
examples:
  - id: ex-a
    task: api times out
    trajectory: |
      update_timeout(api, 8): done
      USED: heur-a
tools:
  update_timeout: Set timeout in seconds.
"""
GOOD_TEMPLATE = """\
Type {{ task_type }}
{% for i in instructions %}- {{ i.text }}
{% endfor %}{% for e in entries %}- [{{ e.id }}]{% if e.candidate %} (unproven){% endif %} {{ e.text }}
{% endfor %}{% for t in tools %}{{ t.name }}: {{ t.description }}
{% endfor %}Last line: USED: ids, or USED: none.
"""
GOOD_ENTRY = """\
id: heur-a
section: heuristics
condition: a function times out
rule: raise the timeout
status: active
source: {kind: seed, runs: [], created: 2026-01-01T00:00:00Z}
"""


def make_repo(root: Path, files: dict[str, str], **thresholds: int) -> Settings:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    overrides = {"thresholds": thresholds} if thresholds else None
    return load_settings(root, env={}, overrides=overrides)


def good_files() -> dict[str, str]:
    return {
        "prompts/lambda_ops/context.yaml": GOOD_CONTEXT,
        "prompts/lambda_ops/system.md.j2": GOOD_TEMPLATE,
        "cheatsheet/heuristics/heur-a.yaml": GOOD_ENTRY,
    }


def lines(issues: list[LintIssue]) -> list[str]:
    return [str(i) for i in issues]


def test_real_repository_is_clean() -> None:
    settings = load_settings(REPO, env={})
    assert lint_repository(settings, known_tools=TOOLS) == []


def test_good_fixture_is_clean(tmp_path: Path) -> None:
    assert lint_repository(make_repo(tmp_path, good_files()), known_tools=TOOLS) == []


def test_broken_repo_reports_every_issue_with_file_and_line(tmp_path: Path) -> None:
    files = good_files()
    files["prompts/lambda_ops/context.yaml"] = """\
version: 1
system: system.md.j2
colour: blue
instructions:
  - id: ins-a
    text: Call update_mem(api) when memory is short.
  - id: ins-a
    text: duplicate
examples: []
tools:
  update_timeout: Set timeout in seconds.
  restart_function: Restart it.
"""
    files["cheatsheet/heuristics/heur-bad.yaml"] = GOOD_ENTRY.replace("id: heur-a", "id: heur-bad").replace(
        "status: active", "status: live\nhelpful: 4"
    )
    files["cheatsheet/heuristics/heur-misnamed.yaml"] = GOOD_ENTRY.replace("id: heur-a", "id: heur-other")
    files["cheatsheet/strategies/ins-a.yaml"] = (
        "id: ins-a\nsection: strategies\npattern: p\naction: a\nsource: {kind: seed, created: 2026-01-01}\n"
    )
    files["cheatsheet/tips/heur-x.yaml"] = GOOD_ENTRY
    issues = lint_repository(make_repo(tmp_path, files), known_tools=TOOLS)
    got = lines(issues)
    # Both schema errors of one entry file, not only the first.
    assert "cheatsheet/heuristics/heur-bad.yaml:5: 'status': Input should be 'candidate', 'active' or 'retired'" in got
    assert "cheatsheet/heuristics/heur-bad.yaml:6: unknown key 'helpful'" in got
    assert (
        "cheatsheet/heuristics/heur-misnamed.yaml:1: id 'heur-other' does not match the file name 'heur-misnamed.yaml'"
        in got
    )
    assert "cheatsheet/strategies/ins-a.yaml:1: duplicate id 'ins-a' (also at prompts/lambda_ops/context.yaml:5)" in got
    assert any(s.startswith("cheatsheet/tips/heur-x.yaml: entries live in") for s in got)
    assert "prompts/lambda_ops/context.yaml:3: unknown key 'colour'" in got
    assert "prompts/lambda_ops/context.yaml:7: duplicate id 'ins-a' (first at instructions[0])" in got
    assert "prompts/lambda_ops/context.yaml:6: 'update_mem' is not a tool of this agent" in got
    assert "prompts/lambda_ops/context.yaml:12: tools: 'restart_function' is not a tool of this agent" in got
    assert all(i.severity == "error" for i in issues)
    assert len(got) == 9, got  # nothing reported twice, nothing spurious
    assert [(str(i.path), i.line or 0) for i in issues] == sorted((str(i.path), i.line or 0) for i in issues)


def test_template_undefined_variable_and_attribute(tmp_path: Path) -> None:
    files = good_files()
    files["prompts/lambda_ops/system.md.j2"] = "Type {{ task_type }}\n\nHello {{ user_name }}\n"
    got = lines(lint_repository(make_repo(tmp_path, files)))
    assert len(got) == 1
    assert got[0].startswith("prompts/lambda_ops/system.md.j2:3: undefined variable 'user_name'")
    # An attribute typo only shows when rendering: lint renders with real entries.
    files["prompts/lambda_ops/system.md.j2"] = GOOD_TEMPLATE.replace("{{ e.text }}", "{{ e.txt }}")
    got = lines(lint_repository(make_repo(tmp_path, files)))
    assert len(got) == 1 and got[0].startswith("prompts/lambda_ops/system.md.j2:3: template error:") and "txt" in got[0]


def test_template_attribute_typo_found_with_an_empty_cheatsheet(tmp_path: Path) -> None:
    files = good_files()
    del files["cheatsheet/heuristics/heur-a.yaml"]
    files["prompts/lambda_ops/system.md.j2"] = GOOD_TEMPLATE.replace("{{ e.id }}", "{{ e.name }}")
    got = lines(lint_repository(make_repo(tmp_path, files)))
    assert any(s.startswith("prompts/lambda_ops/system.md.j2:3: template error:") for s in got)


def test_template_without_used_line_is_a_warning(tmp_path: Path) -> None:
    files = good_files()
    files["prompts/lambda_ops/system.md.j2"] = GOOD_TEMPLATE.replace("Last line: USED: ids, or USED: none.", "Bye.")
    issues = lint_repository(make_repo(tmp_path, files))
    assert len(issues) == 1 and issues[0].severity == "warning" and "USED: <ids>" in issues[0].message


def test_template_syntax_error(tmp_path: Path) -> None:
    files = good_files()
    files["prompts/lambda_ops/system.md.j2"] = "a\nb\n{% for x in entries %}\nno end\n"
    got = lines(lint_repository(make_repo(tmp_path, files)))
    assert len(got) == 1 and got[0].startswith("prompts/lambda_ops/system.md.j2:") and "syntax error" in got[0]


def test_missing_template(tmp_path: Path) -> None:
    files = good_files()
    del files["prompts/lambda_ops/system.md.j2"]
    got = lines(lint_repository(make_repo(tmp_path, files)))
    assert got == ["prompts/lambda_ops/context.yaml:2: template 'system.md.j2' not found"]


def test_token_budget(tmp_path: Path) -> None:
    files = good_files()
    settings = make_repo(tmp_path, files, context_token_budget=100)
    assert lint_repository(settings) == []
    files["cheatsheet/heuristics/heur-a.yaml"] = GOOD_ENTRY.replace("raise the timeout", "raise the timeout " * 40)
    issues = lint_repository(make_repo(tmp_path, files, context_token_budget=100))
    assert len(issues) == 1
    assert "over the budget of 100 (thresholds.context_token_budget)" in str(issues[0])
    assert str(issues[0]).startswith("prompts/lambda_ops/system.md.j2: rendered prompt is ~")


def test_example_used_id_must_exist(tmp_path: Path) -> None:
    files = good_files()
    files["prompts/lambda_ops/context.yaml"] = GOOD_CONTEXT.replace("USED: heur-a", "USED: heur-gone")
    issues = lint_repository(make_repo(tmp_path, files))
    assert [(str(i), i.severity) for i in issues] == [
        (
            "prompts/lambda_ops/context.yaml:9: example 'ex-a' says USED: heur-gone, which is no cheatsheet entry",
            "warning",
        )
    ]
    assert issues[0].to_dict() == {
        "path": "prompts/lambda_ops/context.yaml",
        "line": 9,
        "message": "example 'ex-a' says USED: heur-gone, which is no cheatsheet entry",
        "severity": "warning",
    }
    assert issues[0].format(tmp_path) == str(issues[0])


def test_lint_on_a_copy_of_the_real_data_catches_an_edit(tmp_path: Path) -> None:
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    shutil.copytree(REPO / "cheatsheet", tmp_path / "cheatsheet")
    settings = load_settings(tmp_path, env={})
    assert lint_repository(settings, known_tools=TOOLS) == []
    ctx = tmp_path / "prompts" / "lambda_ops" / "context.yaml"
    ctx.write_text(ctx.read_text().replace("update_alias:", "update_aliases:"))
    got = lines(lint_repository(settings, known_tools=TOOLS))
    assert len(got) == 1 and "tools: 'update_aliases' is not a tool of this agent" in got[0]
