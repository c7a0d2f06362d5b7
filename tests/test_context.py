"""Context files: loading with file:line errors, and rendering the system prompt."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from lambda_ops.tools import TOOL_NAMES
from selfheal.cheatsheet.model import FailurePattern, Heuristic, Source
from selfheal.context.loader import load_context
from selfheal.context.render import TEMPLATE_VARIABLES, render_system_prompt
from selfheal.errors import FileFormatError
from selfheal.tokens import count_tokens

REPO = Path(__file__).resolve().parents[1]

CONTEXT = """\
version: 2
system: system.md.j2
instructions:
  - id: ins-a
    text: Check the VPC first.
  - id: ins-b
    text: One change at a time.
examples:
  - id: ex-a
    task: api times out
    trajectory: |
      update_timeout(api, 8): done
      USED: none
tools:
  update_timeout: Context description of update_timeout.
"""

TEMPLATE = """\
Role. Task type: {{ task_type }}.
{% for i in instructions %}- {{ i.text }}
{% endfor %}{% for t in tools %}* {{ t.name }}: {{ t.description }}
{% endfor %}{% for e in entries %}- [{{ e.id }}] {{ e.text }}
{% endfor %}End with USED: ids or USED: none.
"""

SOURCE = Source(kind="seed", created=datetime(2026, 1, 1, tzinfo=UTC))


def make_context_dir(tmp_path: Path, context: str = CONTEXT, template: str | None = TEMPLATE) -> Path:
    d = tmp_path / "prompts" / "agent"
    d.mkdir(parents=True)
    (d / "context.yaml").write_text(context)
    if template is not None:
        (d / "system.md.j2").write_text(template)
    return d


def load_error(d: Path) -> FileFormatError:
    with pytest.raises(FileFormatError) as info:
        load_context(d)
    return info.value


# -- loading -------------------------------------------------------------------


def test_load_good_context(tmp_path: Path) -> None:
    ctx = load_context(make_context_dir(tmp_path))
    assert ctx.version == 2
    assert [i.id for i in ctx.instructions] == ["ins-a", "ins-b"]
    assert ctx.examples[0].trajectory.startswith("update_timeout(api, 8)")
    assert ctx.tools == {"update_timeout": "Context description of update_timeout."}
    assert ctx.template == TEMPLATE
    # The loaded template and directory are not part of what gets written back.
    assert set(ctx.model_dump()) == {"version", "system", "instructions", "examples", "tools"}


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    text = CONTEXT.replace("    text: One change at a time.\n", "    text: One change at a time.\n    weight: 3\n")
    err = load_error(make_context_dir(tmp_path, text))
    assert err.line == 8
    assert "unknown key 'instructions[1].weight'" in str(err)
    assert str(err).startswith(str(tmp_path / "prompts" / "agent" / "context.yaml") + ":8:")


def test_wrong_type_names_its_line(tmp_path: Path) -> None:
    err = load_error(make_context_dir(tmp_path, CONTEXT.replace("version: 2", "version: two")))
    assert err.line == 1 and "version" in err.detail


def test_missing_required_key(tmp_path: Path) -> None:
    text = CONTEXT.replace("    task: api times out\n", "")
    err = load_error(make_context_dir(tmp_path, text))
    assert err.line == 9 and "missing required key 'examples[0].task'" in err.detail


def test_duplicate_id_points_at_second_occurrence(tmp_path: Path) -> None:
    text = CONTEXT.replace("id: ex-a", "id: ins-a")
    err = load_error(make_context_dir(tmp_path, text))
    assert err.line == 9
    assert "duplicate id 'ins-a'" in err.detail and "instructions[0]" in err.detail


def test_missing_template_points_at_system_key(tmp_path: Path) -> None:
    err = load_error(make_context_dir(tmp_path, template=None))
    assert err.line == 2 and "template 'system.md.j2' not found" in err.detail


def test_template_must_be_a_plain_file_name(tmp_path: Path) -> None:
    err = load_error(make_context_dir(tmp_path, CONTEXT.replace("system: system.md.j2", "system: ../x.j2")))
    assert err.line == 2


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    err = load_error(make_context_dir(tmp_path, CONTEXT + "tools: [unclosed\n"))
    assert err.line is not None and err.line >= 16 and "invalid YAML" in err.detail


def test_missing_context_file(tmp_path: Path) -> None:
    err = load_error(tmp_path)
    assert "context file not found" in str(err)


# -- rendering -----------------------------------------------------------------

ENTRIES = [
    Heuristic(
        id="heur-vpc-before-memory",
        condition="High latency in Lambda",
        rule="Check VPC configuration before memory adjustment",
        status="active",
        source=SOURCE,
    ),
    FailurePattern(id="fail-x", pattern="Query over 7 days", lesson="Split it", status="active", source=SOURCE),
]


def test_render_entries_with_ids_and_overrides(tmp_path: Path) -> None:
    ctx = load_context(make_context_dir(tmp_path))
    out = render_system_prompt(
        ctx,
        task="api times out",
        task_type="lambda_timeout",
        entries=ENTRIES,
        tools=[("update_timeout", "Code description."), ("update_memory", "Code memory description.")],
    )
    assert "Task type: lambda_timeout." in out
    assert "- [heur-vpc-before-memory] When high latency in Lambda: Check VPC configuration before memory" in out
    assert "- [fail-x] " in out
    # the context's description wins; tools without an override keep the code's
    assert "* update_timeout: Context description of update_timeout." in out
    assert "Code description." not in out
    assert "* update_memory: Code memory description." in out
    assert out.endswith("USED: none.\n")  # keep_trailing_newline


def test_undefined_variable_names_template_line(tmp_path: Path) -> None:
    template = "line one\n{{ task_type }}\nline three {{ nope }}\n"
    ctx = load_context(make_context_dir(tmp_path, template=template))
    with pytest.raises(FileFormatError) as info:
        render_system_prompt(ctx, task="t", task_type="x", entries=[], tools=[])
    assert info.value.path == ctx.template_path
    assert info.value.line == 3
    assert "'nope' is undefined" in str(info.value)


def test_undefined_attribute_names_template_line(tmp_path: Path) -> None:
    template = "a\n{% for e in entries %}\n{{ e.id }} {{ e.confidence }}\n{% endfor %}\n"
    ctx = load_context(make_context_dir(tmp_path, template=template))
    render_system_prompt(ctx, task="t", task_type="x", entries=[], tools=[])  # loop not entered: fine
    with pytest.raises(FileFormatError) as info:
        render_system_prompt(ctx, task="t", task_type="x", entries=ENTRIES, tools=[])
    assert info.value.line == 3 and "confidence" in str(info.value)


def test_template_syntax_error_names_line(tmp_path: Path) -> None:
    ctx = load_context(make_context_dir(tmp_path, template="ok\n{% for x in entries %}\nno end\n"))
    with pytest.raises(FileFormatError) as info:
        render_system_prompt(ctx, task="t", task_type="x", entries=[], tools=[])
    assert info.value.path.name == "system.md.j2"
    assert info.value.line is not None and "syntax error" in str(info.value)


def test_template_is_sandboxed(tmp_path: Path) -> None:
    ctx = load_context(make_context_dir(tmp_path, template="{{ task.__class__.__mro__ }}\n"))
    with pytest.raises(FileFormatError):
        render_system_prompt(ctx, task="t", task_type="x", entries=[], tools=[])


def test_template_variables_are_what_render_provides(tmp_path: Path) -> None:
    template = "".join(f"{{{{ {name} is defined }}}}" for name in sorted(TEMPLATE_VARIABLES))
    ctx = load_context(make_context_dir(tmp_path, template=template))
    out = render_system_prompt(ctx, task="t", task_type="x", entries=[], tools=[])
    assert out == "True" * len(TEMPLATE_VARIABLES)


# -- the real seed context ------------------------------------------------------

SEED_TOOLS = list(TOOL_NAMES)


def test_seed_prompt_is_compact_and_asks_for_used_line() -> None:
    from selfheal.cheatsheet.store import load_cheatsheet

    ctx = load_context(REPO / "prompts" / "lambda_ops")
    assert set(ctx.tools) == set(SEED_TOOLS)
    cheatsheet = load_cheatsheet(REPO / "cheatsheet")
    longest = sorted(cheatsheet.active(), key=lambda e: -count_tokens(e.text()))[:3]
    out = render_system_prompt(
        ctx,
        task="checkout-api times out after 3 seconds",
        task_type="lambda_timeout",
        entries=longest,
        tools=[(t, "code docstring") for t in SEED_TOOLS],
    )
    for entry in longest:
        assert f"[{entry.id}] " in out
    last = out.strip().splitlines()
    assert "USED: none" in last[-1] and "USED: " in "\n".join(last[-2:])
    # Tool descriptions reach the model with the tool definitions, not twice.
    for tool in SEED_TOOLS:
        assert f"- {tool}: " not in out
    assert "code docstring" not in out
    # ~750 real Qwen tokens; the offline estimate overcounts identifiers by ~35%.
    assert count_tokens(out) < 1100
