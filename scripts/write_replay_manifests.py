"""Write the manifests of the committed replay caches by replaying what each one recorded.

The caches under ``evals/<dataset>/replay/`` were recorded before caches had
manifests. This replays each recorded eval offline, exactly as its committed
replay test does (tests/test_replay_experiment.py, tests/test_sql_analyst_replay.py),
collects the response keys every side used, and writes ``manifest.json`` with
the model, the dataset hash, each side's context/cheatsheet versions and the
examples it covers. Run from the repository root:

    PYTHONPATH=.:agents/lambda_ops:agents/sql_analyst python scripts/write_replay_manifests.py
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import git

from selfheal.config import load_settings
from selfheal.evaluation.dataset import load_dataset
from selfheal.evaluation.replay import example_digest
from selfheal.models.cache_manifest import (
    CacheManifest,
    Coverage,
    add_coverage,
    keys_of,
    now,
    save_manifest,
    track_keys,
    version_core,
)

REPO = Path(__file__).resolve().parents[1]


def _commit_all(root: Path, message: str) -> git.Repo:
    repo = git.Repo.init(root)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "selfheal")
        cw.set_value("user", "email", "selfheal@example.invalid")
    repo.git.add(A=True)
    repo.index.commit(message)
    return repo


def _write(root: Path, cache: Path, name: str, against: str | None, labels: dict[str, str]) -> None:
    """Replay each side alone (the baseline from ``against`` in a worktree) and record what it used."""
    from selfheal.evaluation import runner
    from selfheal.evaluation.evaluate import baseline_settings
    from selfheal.evaluation.worktree import open_repo, ref_worktree, resolve_ref
    from selfheal.versioning import content_version

    settings = load_settings(root, env={}, overrides={
        "model": {"provider": "local", "cache_mode": "replay", "cache_dir": str(cache)}})
    ds = load_dataset(settings)
    by_id = {ex.id: ex for ex in ds.examples}
    manifest: CacheManifest | None = None

    def side(run_settings, label: str) -> None:
        nonlocal manifest
        with track_keys(cache) as keys:
            result = runner.run_experiment(run_settings, ds, split="test", progress=False)
        if manifest is None:
            manifest = CacheManifest(name=name, model=result.model, dataset=ds.name, dataset_hash=ds.hash)
        manifest = add_coverage(manifest, Coverage(
            label=label,
            context_version=version_core(content_version(run_settings.prompts_dir, run_settings.root)),
            cheatsheet_version=version_core(content_version(run_settings.cheatsheet_dir, run_settings.root)),
            examples={r.example_id: example_digest(by_id[r.example_id]) for r in result.results
                      if r.status in ("ok", "error")},
            keys=keys_of(keys), recorded_at=now(),
        ))
        verdicts = {r.status for r in result.results}
        print(f"{label}: {result.passed}/{result.n} passed, statuses {sorted(verdicts)}, {len(keys)} key(s)")

    if against is not None:
        with open_repo(settings.root) as repo:
            top = Path(repo.working_tree_dir or root).resolve()
            commit = resolve_ref(repo, against)
        with ref_worktree(top, commit) as wt:
            side(baseline_settings(settings, wt, top), labels["baseline"])
    side(settings, labels["candidate"])
    assert manifest is not None
    save_manifest(cache, manifest)
    print(f"wrote {cache / 'manifest.json'}")


def lambda_ops(tmp: Path) -> None:
    exp = REPO / "evals/lambda_ops/experiments/online-learning"
    root = tmp / "lambda_ops"
    shutil.copytree(exp / "prompts", root / "prompts/lambda_ops")
    shutil.copytree(REPO / "evals", root / "evals", ignore=shutil.ignore_patterns("replay*", "experiments"))
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    shutil.copytree(exp / "seed-cheatsheet", root / "cheatsheet")
    _commit_all(root, "seed").close()
    shutil.rmtree(root / "cheatsheet")
    shutil.copytree(exp / "cheatsheet", root / "cheatsheet")
    _write(root, REPO / "evals/lambda_ops/replay", "lambda_ops", "HEAD", {
        "baseline": "online-learning baseline: seed cheatsheet (test split)",
        "candidate": "online-learning candidate: learned cheatsheet (test split)",
    })


def sql_analyst(tmp: Path) -> None:
    root = tmp / "sql_analyst"
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name / "sql_analyst", root / name / "sql_analyst")
    shutil.copytree(REPO / "evals/sql_analyst", root / "evals/sql_analyst",
                    ignore=shutil.ignore_patterns("replay", "experiments"))
    text = (REPO / "selfheal.yaml").read_text().replace("agent: lambda_ops", "agent: sql_analyst", 1)
    (root / "selfheal.yaml").write_text(text)
    _commit_all(root, "baseline").close()
    os.environ["SQL_ANALYST_CACHE_DIR"] = str(tmp / "sql-db")
    _write(root, REPO / "evals/sql_analyst/replay", "sql_analyst", None,
           {"candidate": "sql_analyst baseline (test split)"})


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="selfheal-manifests-") as d:
        for fn in (lambda_ops, sql_analyst):
            if len(sys.argv) == 1 or fn.__name__ in sys.argv[1:]:
                fn(Path(d))
