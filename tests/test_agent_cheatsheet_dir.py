"""Each agent reads ``cheatsheet/<agent>/`` when it exists; a flat cheatsheet ignores other agents' folders."""

from __future__ import annotations

from pathlib import Path

from selfheal.cheatsheet.store import load_cheatsheet
from selfheal.config import load_settings

ENTRY = """id: {id}
section: heuristics
task_type: general
condition: {cond}
rule: Check the obvious first
status: active
source: {{kind: seed, runs: [], created: 2026-01-05T09:00:00Z}}
"""


def _entry(root: Path, rel: str, entry_id: str) -> None:
    path = root / rel / f"{entry_id}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ENTRY.format(id=entry_id, cond=f"when {entry_id}"))


def test_per_agent_directory_wins_and_flat_layout_skips_it(tmp_path: Path) -> None:
    (tmp_path / "selfheal.yaml").write_text("agent: lambda_ops\n")
    _entry(tmp_path, "cheatsheet/heuristics", "heur-flat")
    _entry(tmp_path, "cheatsheet/sql_analyst/heuristics", "heur-sql")

    flat = load_settings(tmp_path, env={})
    assert flat.cheatsheet_dir == tmp_path / "cheatsheet"
    assert [e.id for e in load_cheatsheet(flat.cheatsheet_dir).entries] == ["heur-flat"]

    sql = load_settings(tmp_path, env={"SELFHEAL_AGENT": "sql_analyst"})
    assert sql.cheatsheet_dir == tmp_path / "cheatsheet" / "sql_analyst"
    assert [e.id for e in load_cheatsheet(sql.cheatsheet_dir).entries] == ["heur-sql"]
