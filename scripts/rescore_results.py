"""Re-judge committed eval results under their dataset's current evaluator rules, without running anything.

A recorded :class:`ExampleResult` keeps every evaluator's score; its verdict
(``passed``, ``score``) is their combination under the dataset's
``evaluators`` (weights, ``pass_threshold``, ``required``). When those rules
change, e.g. ``required: [output]`` so that a question passes only with the
right answer, the committed results must say what the same runs are worth
under the new rules, or their replays (which judge with the current dataset)
stop matching them. This rewrites ``passed`` / ``score`` / each score's
``required`` in place, recomputes a stored paired ``comparison``, and prints
every changed verdict. The runs, answers and evaluator scores are untouched.

    python scripts/rescore_results.py evals/lambda_ops experiments/learning/seed/test.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rescore_side(side: dict[str, Any], dataset: Any) -> list[str]:
    """Re-judge one ExperimentResult's examples in place; the names whose verdict changed."""
    from selfheal.evaluation.evaluators import verdict
    from selfheal.evaluation.results import EvaluatorScore

    by_name = {e.name: e for e in dataset.examples}
    changed = []
    for r in side["results"]:
        example = by_name.get(r["name"])
        if r.get("status") != "ok" or not r.get("scores") or example is None:
            continue  # no verdict to move, or an example the dataset no longer has
        scores = [EvaluatorScore.model_validate(s) for s in r["scores"]]
        passed, score, scores = verdict(scores, example, dataset.spec.evaluators)
        if passed != r["passed"]:
            changed.append(f"{r['name']}: {'pass' if r['passed'] else 'fail'} -> {'pass' if passed else 'fail'}")
        r["passed"], r["score"] = passed, score
        r["scores"] = [s.model_dump(mode="json") for s in scores]
    return changed


def rescore_file(path: Path, dataset: Any) -> list[str]:
    from selfheal.evaluation.compare import compare
    from selfheal.evaluation.results import ExperimentResult
    from selfheal.yamlio import atomic_write_text

    data = json.loads(path.read_text(encoding="utf-8"))
    sides = ["(top)"] if isinstance(data.get("results"), list) else [
        k for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("results"), list)]
    changed = []
    for key in sides:
        side = data if key == "(top)" else data[key]
        changed += [f"{key}: {c}" for c in rescore_side(side, dataset)]
    if isinstance(data.get("comparison"), dict) and {"baseline", "candidate"} <= set(data):
        comparison = compare(ExperimentResult.model_validate(data["baseline"]),
                             ExperimentResult.model_validate(data["candidate"]))
        data["comparison"] = comparison.model_dump(mode="json")
    if changed:
        atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    from selfheal.evaluation.dataset import load_dataset_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="the dataset directory (dataset.yaml)")
    ap.add_argument("files", type=Path, nargs="+", help="result files, relative to the dataset directory or not")
    args = ap.parse_args(argv)
    dataset = load_dataset_dir(args.dataset.resolve())
    for f in args.files:
        path = f if f.is_file() else args.dataset / f
        for line in rescore_file(path, dataset):
            print(f"{path}: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
