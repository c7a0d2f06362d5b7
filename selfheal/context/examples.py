"""Which few-shot examples a task sees when the context holds more than fit.

Bootstrapped demonstrations accumulate (one per train task, per task type);
showing all of them costs prompt tokens on every run and buries the one that
fits. Like cheatsheet entries (DC-RS retrieval), a context with more than
``context.max_examples`` examples shows each task only the most relevant:
examples of the task's own type first, then by similarity of the example's
task to this task (embedding cosine when an embedder is given, else word
overlap). A context within the limit shows all its examples, unretrieved, in
the fixed part of the prompt (see the templates' note on the KV cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from selfheal.context.model import AgentContext, Example

if TYPE_CHECKING:
    from selfheal.models.embeddings import Embedder


def needs_retrieval(ctx: AgentContext, max_examples: int) -> bool:
    """True when the context holds more examples than a prompt shows."""
    return len(ctx.examples) > max_examples


def _lexical(task: str, texts: Sequence[str]) -> list[float]:
    from selfheal.cheatsheet.retrieval import tokenize

    query = set(tokenize(task))
    out = []
    for text in texts:
        words = set(tokenize(text))
        union = query | words
        out.append(len(query & words) / len(union) if union else 0.0)
    return out


def _cosine(task: str, texts: Sequence[str], embedder: Embedder) -> list[float]:
    from selfheal.cheatsheet.ranking import query_vector
    from selfheal.models.embeddings import normalize_rows

    # query_vector memoises per (embedder, text): an example's task is embedded once per process.
    matrix = normalize_rows(np.vstack([query_vector(embedder, t) for t in [task, *texts]]).astype(np.float32))
    return [float(x) for x in matrix[1:] @ matrix[0]]


def rank_examples(
    examples: Sequence[Example],
    task: str,
    task_type: str | None,
    *,
    embedder: Embedder | None = None,
) -> list[tuple[Example, float]]:
    """Every example with its similarity to ``task``, best first.

    Order: same task type, then examples without a type (hand-written ones
    that teach the method), then other types; within a group by similarity,
    ties by id so the order is stable.
    """
    texts = [e.task for e in examples]
    sims = _cosine(task, texts, embedder) if embedder is not None and examples else _lexical(task, texts)

    def group(e: Example) -> int:
        if task_type is not None and e.task_type == task_type:
            return 0
        return 1 if e.task_type is None else 2

    ranked = sorted(zip(examples, sims, strict=True), key=lambda t: (group(t[0]), -round(t[1], 9), t[0].id))
    return [(e, s) for e, s in ranked]


def retrieve_examples(
    ctx: AgentContext,
    task: str,
    task_type: str | None,
    *,
    max_examples: int,
    embedder: Embedder | None = None,
) -> list[Example] | None:
    """The examples to show for ``task``; None when all of them fit (the fixed part shows them)."""
    if not needs_retrieval(ctx, max_examples):
        return None
    return [e for e, _ in rank_examples(ctx.examples, task, task_type, embedder=embedder)[:max_examples]]
