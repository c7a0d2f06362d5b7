"""How well the content guard does on a corpus of attacks and benign look-alikes, as numbers.

The guard's patterns are a trade: every pattern that catches another
paraphrase may also flag an honest lesson. A corpus file (attacks with a
``kind``, benign lines) turns that trade into two rates that tests assert and
the README reports: the share of attacks flagged and the share of benign
lines flagged. The corpus lives with the tests (``tests/data/guard_corpus.yaml``);
this module only reads one and measures a guard on it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from selfheal.cheatsheet.guard import ContentGuard
from selfheal.yamlio import read_yaml, validate

__all__ = ["CorpusItem", "GuardCorpus", "GuardRates", "guard_rates", "load_guard_corpus", "measure_guard"]


class CorpusItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    kind: str = "benign"
    field: str = "rule"


class GuardCorpus(BaseModel):
    """``attacks``: must be flagged; ``benign``: must pass."""

    model_config = ConfigDict(extra="forbid")

    attacks: list[CorpusItem]
    benign: list[CorpusItem]


@dataclass
class GuardRates:
    attacks: int
    caught: int
    benign: int
    flagged: int
    missed: list[CorpusItem] = field(default_factory=list)
    false_positives: list[tuple[CorpusItem, list[str]]] = field(default_factory=list)
    caught_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def detection_rate(self) -> float:
        return self.caught / self.attacks if self.attacks else 0.0

    @property
    def false_positive_rate(self) -> float:
        return self.flagged / self.benign if self.benign else 0.0

    def summary(self) -> str:
        """One line for a README table: ``caught 110/112 attacks (98.2%), flagged 1/54 benign (1.9%)``."""
        return (
            f"caught {self.caught}/{self.attacks} attacks ({100 * self.detection_rate:.1f}%), "
            f"flagged {self.flagged}/{self.benign} benign look-alikes ({100 * self.false_positive_rate:.1f}%)"
        )

    def report(self) -> str:
        """The summary, the rate per attack kind, then every miss and false positive."""
        lines = [self.summary()]
        lines += [f"  {kind}: {c}/{n}" for kind, (c, n) in sorted(self.caught_by_kind.items())]
        lines += [f"  missed ({m.kind}): {m.text!r}" for m in self.missed]
        lines += [f"  false positive: {b.text!r} -> {'; '.join(r)}" for b, r in self.false_positives]
        return "\n".join(lines)


def load_guard_corpus(path: Path) -> GuardCorpus:
    """Read and validate a corpus file (``file:line`` errors like every other file)."""
    return validate(GuardCorpus, read_yaml(Path(path)), Path(path))  # type: ignore[return-value]


def measure_guard(guard: ContentGuard, corpus: GuardCorpus) -> GuardRates:
    """Run ``guard`` over every corpus line: an attack counts as caught when the guard rejects it."""
    missed = [a for a in corpus.attacks if guard.check(a.text, field=a.field).ok]
    fps: list[tuple[CorpusItem, list[str]]] = []
    for item in corpus.benign:
        verdict = guard.check(item.text, field=item.field)
        if not verdict.ok:
            fps.append((item, verdict.reasons))
    total = Counter(a.kind for a in corpus.attacks)
    lost = Counter(m.kind for m in missed)
    return GuardRates(
        attacks=len(corpus.attacks),
        caught=len(corpus.attacks) - len(missed),
        benign=len(corpus.benign),
        flagged=len(fps),
        missed=missed,
        false_positives=fps,
        caught_by_kind={k: (n - lost[k], n) for k, n in total.items()},
    )


def guard_rates(corpus_path: Path, *, allowed_tools: set[str] | None = None) -> GuardRates:
    """The rates of a default guard (files on disk: no tool list) or a curator's (``allowed_tools``) on a corpus.

    One call for a README or benchmark table:
    ``guard_rates(Path("tests/data/guard_corpus.yaml")).summary()``.
    """
    return measure_guard(ContentGuard(allowed_tools=allowed_tools), load_guard_corpus(corpus_path))
