"""selfheal init: scaffolds into an existing repository without overwriting anything."""

from __future__ import annotations

import pytest

from helpers.gitrepo import git, isolate_git
from selfheal.cli.main import main

EXISTING_CONFIG = "# our own config\nagent: lambda_ops\nthresholds:\n  top_k: 2\n"


def run_cli(args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def agent_repo(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    root = tmp_path / "agent"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", "git@github.com:acme/agent.git")
    return root


def test_init_keeps_existing_files_and_creates_the_rest(agent_repo, capsys):
    (agent_repo / "selfheal.yaml").write_text(EXISTING_CONFIG)
    (agent_repo / "README.md").write_text("# Our agent\n")
    (agent_repo / ".gitignore").write_text("__pycache__/\n")
    code, _, err = run_cli(["init", str(agent_repo)], capsys)
    assert code == 2 and "--force-missing-only" in err                 # set up already: refuses by default
    code, out, err = run_cli(["init", str(agent_repo), "--force-missing-only"], capsys)
    assert code == 0, err
    assert (agent_repo / "selfheal.yaml").read_text() == EXISTING_CONFIG
    assert (agent_repo / "README.md").read_text() == "# Our agent\n"
    assert "kept existing selfheal.yaml" in out
    for rel in ("prompts/lambda_ops/context.yaml", "prompts/lambda_ops/system.md.j2",
                "cheatsheet/strategies/.gitkeep", "cheatsheet/code_snippets/.gitkeep",
                "cheatsheet/failure_patterns/.gitkeep", "cheatsheet/heuristics/heur-example-read-before-write.yaml",
                "evals/lambda_ops/dataset.yaml", "evals/lambda_ops/examples/example.yaml",
                ".github/workflows/selfheal-eval.yml", ".github/workflows/selfheal-optimize.yml"):
        assert (agent_repo / rel).is_file(), rel
        assert f"created {rel}" in out
    assert (agent_repo / ".github/CODEOWNERS").read_text().splitlines()[-2:] == [
        "/prompts/ @acme", "/cheatsheet/ @acme"]
    assert (agent_repo / ".gitignore").read_text().startswith("__pycache__/\n")
    assert ".selfheal/" in (agent_repo / ".gitignore").read_text().splitlines()


def test_init_twice_changes_nothing_and_never_duplicates_codeowners(agent_repo, capsys):
    (agent_repo / ".github").mkdir()
    (agent_repo / ".github/CODEOWNERS").write_text("* @acme/core\n/prompts/ @acme\n")
    code, _, err = run_cli(["init", str(agent_repo)], capsys)
    assert code == 0, err
    owners = (agent_repo / ".github/CODEOWNERS").read_text()
    assert owners.startswith("* @acme/core\n/prompts/ @acme\n") and owners.count("/prompts/") == 1
    assert owners.count("/cheatsheet/ @acme") == 1
    before = {p: p.read_bytes() for p in agent_repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    code, out, _ = run_cli(["init", str(agent_repo), "--force-missing-only"], capsys)
    assert code == 0 and "created" not in out and "appended" not in out
    after = {p: p.read_bytes() for p in agent_repo.rglob("*") if p.is_file() and ".git" not in p.parts}
    assert after == before


def test_a_fresh_scaffold_lints_clean_and_its_dataset_loads(agent_repo, capsys):
    code, _, err = run_cli(["init", str(agent_repo), "--owner", "@acme/ml"], capsys)
    assert code == 0, err
    code, out, err = run_cli(["-C", str(agent_repo), "lint"], capsys)
    assert code == 0, out + err
    assert "0 error(s), 0 warning(s)" in err
    from selfheal.config import load_settings
    from selfheal.evaluation.dataset import load_dataset

    dataset = load_dataset(load_settings(agent_repo, env={}))
    assert [e.name for e in dataset.examples] == ["example-explain-change"]


def test_init_rejects_bad_names(agent_repo, capsys):
    code, _, err = run_cli(["init", str(agent_repo), "--agent", "../x"], capsys)
    assert code == 2 and "agent '../x'" in err
    assert not (agent_repo / "selfheal.yaml").exists()
