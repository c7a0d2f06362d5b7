"""Sharded evaluation: split a dataset's examples across runners and merge the results.

A CI matrix runs ``selfheal eval --shard K/N`` on N runners; each writes a
:class:`ShardResult` file; ``selfheal eval merge`` joins them back into the
experiment(s) one unsharded run would have produced (same examples, same
order), so the report and the gate judge the whole dataset. The split is by
position in the selected examples (``position % N == K - 1``): deterministic
on every machine, balanced to within one example, and reversible on merge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.errors import SelfhealError
from selfheal.evaluation.results import ExampleResult, ExperimentResult

T = TypeVar("T")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 1 <= K <= N."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise SelfhealError(f"--shard {text!r}: expected K/N, e.g. 1/4") from None
    if n < 1 or not 1 <= k <= n:
        raise SelfhealError(f"--shard {text!r}: K must be between 1 and N (N >= 1)")
    return k, n


def shard_positions(total: int, shard: int, shards: int) -> list[int]:
    """The positions (0-based, in selection order) that shard ``shard`` of ``shards`` runs."""
    return [i for i in range(total) if i % shards == shard - 1]


def select_shard(items: Sequence[T], shard: int, shards: int) -> list[T]:
    return [items[i] for i in shard_positions(len(items), shard, shards)]


class ShardResult(BaseModel):
    """One shard's experiments: the file ``selfheal eval --shard K/N`` writes and ``eval merge`` reads."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["selfheal-eval-shard"] = "selfheal-eval-shard"
    schema_version: Literal[1] = 1
    shard: int = Field(ge=1)
    shards: int = Field(ge=1)
    total: int = Field(ge=0)              # examples in the unsharded selection
    positions: list[int]                  # their positions in it, in this shard's order
    candidate: ExperimentResult
    baseline: ExperimentResult | None = None


def write_shard(path: Path, result: ShardResult) -> Path:
    from selfheal.yamlio import atomic_write_text

    atomic_write_text(path, json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    return path


def load_result_file(path: Path) -> ShardResult | ExperimentResult:
    """A shard file, or a plain experiment (``ExperimentResult`` JSON, or a ``--format json`` report)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SelfhealError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise SelfhealError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        if isinstance(data, dict) and data.get("kind") == "selfheal-eval-shard":
            return ShardResult.model_validate(data)
        if isinstance(data, dict) and isinstance(data.get("experiment"), dict):  # a --format json report
            data = data["experiment"]
        return ExperimentResult.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise SelfhealError(f"{path}: not a shard or experiment result ({loc}: {err['msg']})") from None


def _same(values: list[str], what: str) -> str:
    distinct = sorted(set(values))
    if len(distinct) != 1:
        raise SelfhealError(f"the shards ran different {what}s ({', '.join(distinct)}); cannot merge them")
    return distinct[0]


def merge_experiments(parts: list[tuple[list[int], ExperimentResult]], total: int) -> ExperimentResult:
    """One experiment from shards: results back in selection order, provenance checked to agree."""
    exps = [e for _, e in parts]
    for what in ("dataset", "dataset_hash", "split", "model", "context_version", "cheatsheet_version", "cache_mode"):
        _same([str(getattr(e, what)) for e in exps], what.replace("_", " "))
    slots: list[ExampleResult | None] = [None] * total
    for positions, exp in parts:
        if len(positions) != len(exp.results):
            raise SelfhealError(f"shard experiment {exp.name} has {len(exp.results)} results for"
                                f" {len(positions)} examples; cannot merge it")
        for pos, res in zip(positions, exp.results, strict=True):
            if not 0 <= pos < total or slots[pos] is not None:
                raise SelfhealError(f"example position {pos} appears twice or out of range; cannot merge")
            slots[pos] = res
    first = exps[0]
    extra = dict(first.extra)
    extra["shards"] = [{"experiment_id": e.experiment_id, "name": e.name} for e in exps]
    return first.model_copy(update={
        "experiment_id": "+".join(e.experiment_id for e in exps),
        "name": f"{first.name.rsplit('-shard', 1)[0]}-merged",
        "jobs": sum(e.jobs for e in exps),
        "started_at": min(e.started_at for e in exps),
        "finished_at": max(e.finished_at for e in exps),
        "results": [r for r in slots if r is not None],
        "extra": extra,
    })


def merge_shards(shards: list[ShardResult]) -> tuple[ExperimentResult, ExperimentResult | None]:
    """(candidate, baseline or None) of the whole run; every shard 1..N exactly once."""
    if not shards:
        raise SelfhealError("no shard files to merge")
    n = {s.shards for s in shards}
    if len(n) != 1:
        raise SelfhealError(f"the files come from different splits into shards ({', '.join(map(str, sorted(n)))})")
    count = n.pop()
    seen = sorted(s.shard for s in shards)
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing or len(seen) != len(set(seen)):
        dup = sorted({k for k in seen if seen.count(k) > 1})
        detail = (f"missing shard(s) {', '.join(map(str, missing))}" if missing else "") + (
            f"{'; ' if missing else ''}shard(s) {', '.join(map(str, dup))} given twice" if dup else "")
        raise SelfhealError(f"cannot merge {len(shards)} file(s) of a {count}-shard run: {detail}")
    totals = {s.total for s in shards}
    if len(totals) != 1:
        raise SelfhealError("the shards selected different examples (their totals differ); cannot merge")
    total = totals.pop()
    shards = sorted(shards, key=lambda s: s.shard)
    candidate = merge_experiments([(s.positions, s.candidate) for s in shards], total)
    with_base = [s for s in shards if s.baseline is not None]
    if with_base and len(with_base) != len(shards):
        raise SelfhealError("some shards ran --against and some did not; cannot merge their baselines")
    baseline = None
    if with_base:
        baseline = merge_experiments([(s.positions, s.baseline) for s in shards if s.baseline is not None], total)
    return candidate, baseline


def merge_files(paths: list[Path]) -> tuple[ExperimentResult, ExperimentResult | None]:
    """Merge result files: all shard files, or a single plain experiment."""
    loaded = [load_result_file(p) for p in paths]
    plain = [x for x in loaded if isinstance(x, ExperimentResult)]
    if plain:
        if len(loaded) != 1:
            raise SelfhealError("give either shard files or one experiment result, not a mix")
        return plain[0], None
    return merge_shards([x for x in loaded if isinstance(x, ShardResult)])
