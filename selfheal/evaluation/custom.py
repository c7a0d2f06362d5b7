"""A team's own evaluators, named ``module:function`` in ``dataset.yaml``, in LangSmith's shape.

A LangSmith user already has evaluators; they must work here unchanged. Two
signatures are accepted, as LangSmith accepts them (parameters matched by name):

* ``(run, example)``: ``run.inputs`` / ``run.outputs`` / ``run.error`` /
  ``run.metadata`` and ``example.inputs`` / ``example.outputs`` / ``example.metadata``;
* any of ``(inputs, outputs, reference_outputs, run, example)`` as keywords.

They return ``{"key", "score", "comment"}`` (``value`` and ``correct`` too),
``{"results": [...]}`` for several, a bool or a number. Scores are clamped to
0..1 (a bool is 1/0). An evaluator that raises, or returns something else,
scores 0 with the reason as its comment: one bad evaluator never ends an eval.

In ``dataset.yaml``::

    evaluators:
      custom:
        - function: my_evals:exact_total      # importable from the repository root
          weight: 2
          required: true                      # a failure fails the example whatever the score
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.errors import ConfigError
from selfheal.evaluation.results import EvaluatorScore

if TYPE_CHECKING:
    from selfheal.agent.runner import RunOutcome
    from selfheal.evaluation.dataset import CustomEvaluatorSpec, Example

_ACCEPTED = {"run", "example", "inputs", "outputs", "reference_outputs"}


@dataclass
class EvalRun:
    """What a LangSmith evaluator reads of a run (``langsmith.schemas.Run``'s fields it uses)."""

    id: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    run_type: str = "chain"

    @property
    def extra(self) -> dict[str, Any]:
        return {"metadata": self.metadata}


@dataclass
class EvalExample:
    """What a LangSmith evaluator reads of an example (``langsmith.schemas.Example``)."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


def import_object(spec: str, root: Path, *, what: str) -> Any:
    """``module:attribute`` imported with the repository root first on ``sys.path``
    (the registry's loader); every failure is one ``ConfigError`` naming ``spec``."""
    from selfheal.agents.registry import load_object

    module_name = spec.partition(":")[0]
    try:
        return load_object(spec, root=root)
    except ValueError:
        raise ConfigError(f"{what} '{spec}': expected 'module:attribute'") from None
    except AttributeError:
        raise ConfigError(f"{what} '{spec}': {module_name} has no attribute '{spec.partition(':')[2]}'") from None
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's module
        raise ConfigError(f"{what} '{spec}': cannot import {module_name}: {type(exc).__name__}: {exc}") from None


#: A loaded evaluator, adapted once to one calling convention: ``(run, example) -> result``.
Evaluator = Callable[["EvalRun", "EvalExample"], Any]


def load_evaluator(spec: str, root: Path) -> Evaluator:
    """The callable behind ``spec``, its signature checked and adapted once (not per example).

    Parameters named from ``run, example, inputs, outputs, reference_outputs``
    are passed by name; any other two-parameter function gets ``(run, example)``
    positionally, as LangSmith allows.
    """
    fn = import_object(spec, root, what="evaluator")
    if not callable(fn):
        raise ConfigError(f"evaluator '{spec}': not callable")
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return fn  # a builtin or C callable: trust it with (run, example)
    names = [p.name for p in params.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if all(n in _ACCEPTED for n in names):

        def by_name(run: EvalRun, ref: EvalExample) -> Any:
            available = {"run": run, "example": ref, "inputs": run.inputs, "outputs": run.outputs,
                         "reference_outputs": ref.outputs}
            return fn(**{n: available[n] for n in names})

        return by_name
    unknown = [p.name for p in params.values() if p.name in names and p.name not in _ACCEPTED
               and p.default is p.empty]
    if unknown and len(names) != 2:
        raise ConfigError(
            f"evaluator '{spec}': unsupported parameter(s) {', '.join(unknown)} "
            "(use (run, example) or inputs/outputs/reference_outputs)"
        )
    return fn


def run_views(example: Example, outcome: RunOutcome) -> tuple[EvalRun, EvalExample]:
    """The run and the example as a LangSmith evaluator sees them."""
    inputs = {"task": example.task}
    outputs = {
        "output": outcome.final_answer,
        "success": outcome.success,
        "tool_calls": outcome.tool_calls,
        "checks": outcome.checks,
        "used_entries": outcome.used_entries,
    }
    run = EvalRun(
        id=outcome.run_id, name=f"selfheal:{example.name}", inputs=inputs, outputs=outputs,
        error=outcome.reason if outcome.error_type else None,
        metadata={"task_type": outcome.task_type, "scenario": outcome.scenario, "model": outcome.model,
                  "success": outcome.success, "error_type": outcome.error_type},
    )  # fmt: skip
    ref = EvalExample(id=example.id, inputs=inputs, outputs=dict(example.reference_outputs),
                      metadata={"split": example.split, "task_type": example.task_type, **example.metadata})
    return run, ref


def _score_of(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return max(0.0, min(1.0, float(value)))
    return None


def _results(raw: Any, default_key: str) -> list[tuple[str, float, str]]:
    """(key, score, comment) triples from whatever an evaluator returned; ValueError when unusable."""
    if isinstance(raw, dict) and isinstance(raw.get("results"), list):
        out = []
        for item in raw["results"]:
            out += _results(item, default_key)
        return out
    if isinstance(raw, dict):
        key = str(raw.get("key") or default_key)
        for field_name in ("score", "value", "correct"):
            if field_name in raw:
                score = _score_of(raw[field_name])
                if score is None:
                    raise ValueError(f"{field_name} {raw[field_name]!r} is not a number or bool")
                return [(key, score, str(raw.get("comment") or ""))]
        raise ValueError("the result has no score")
    score = _score_of(raw)
    if score is None:
        raise ValueError(f"returned {type(raw).__name__}, not a dict, number or bool")
    return [(default_key, score, "")]


def score_custom(spec: CustomEvaluatorSpec, fn: Evaluator, example: Example,
                 outcome: RunOutcome) -> list[EvaluatorScore]:
    """Run one custom evaluator; every failure is a 0 score with its reason, never an exception."""
    default_key = spec.key or spec.function.rpartition(":")[2]
    run, ref = run_views(example, outcome)
    try:
        triples = _results(fn(run, ref), default_key)
    except Exception as exc:  # noqa: BLE001 - a team's evaluator may raise anything
        return [EvaluatorScore(key=default_key, score=0.0, passed=False, weight=spec.weight, required=spec.required,
                               comment=f"evaluator {spec.function} failed: {type(exc).__name__}: {exc}"[:240])]
    return [
        EvaluatorScore(key=key, score=score, passed=score >= spec.pass_score, weight=spec.weight,
                       required=spec.required, comment=" ".join(comment.split())[:240])
        for key, score, comment in triples
    ]
