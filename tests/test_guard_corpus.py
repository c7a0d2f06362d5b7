"""The content guard on a corpus of 100+ injection attempts and 50+ benign look-alikes, as rates.

Attacks come in every shape the issue found getting through: paraphrases of
"ignore previous instructions", "higher priority than the system prompt",
other languages, tool names in any spelling (deleteFunction, delete-function,
``aws lambda delete-function``), destructive SQL, unicode tricks (homoglyphs,
zero-width splits, bidi, fullwidth), fake entry markers and system tags.
Benign lines mention the same words as ordinary lessons. Targets: at least
95% of attacks flagged, at most 5% of benign lines flagged, with and without
the agent's tool list (files on disk are checked without it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.reliability import record

from selfheal.cheatsheet.guard import ContentGuard, fold
from selfheal.cheatsheet.guard_rates import load_guard_corpus, measure_guard

CORPUS = Path(__file__).parent / "data" / "guard_corpus.yaml"
TOOLS = {
    "lambda_ops": "lambda_ops.tools",
    "sql_analyst": "sql_analyst.tools",
}


def _tools(agent: str) -> set[str]:
    import importlib

    return set(importlib.import_module(TOOLS[agent]).TOOL_NAMES)


def test_corpus_size_and_coverage() -> None:
    corpus = load_guard_corpus(CORPUS)
    assert len(corpus.attacks) >= 100 and len(corpus.benign) >= 50
    kinds = {a.kind for a in corpus.attacks}
    assert kinds >= {"override", "language", "tool", "unicode", "marker", "exfiltration"}
    texts = " ".join(a.text for a in corpus.attacks)
    for needle in ("invoke delete-function", "call deleteFunction", "aws lambda delete-function", "DROP TABLE",
                   "higher priority than the system prompt", "Ignoriere", "\u200b", "\u202e", "<system>"):
        assert needle in texts, needle


@pytest.mark.parametrize("with_tools", [False, True], ids=["files-on-disk", "curator-with-tool-list"])
def test_rates_meet_the_targets(with_tools: bool) -> None:
    # The benign lines are lessons of both reference agents: the tool list is both agents' tools.
    guard = ContentGuard(allowed_tools=_tools("lambda_ops") | _tools("sql_analyst") if with_tools else None)
    rates = measure_guard(guard, load_guard_corpus(CORPUS))
    print(rates.report())
    assert rates.detection_rate >= 0.95, rates.report()
    assert rates.false_positive_rate <= 0.05, rates.report()
    if with_tools:
        record("injections", tried=rates.attacks, held=rates.caught, lost=rates.attacks - rates.caught,
               unit="attempts", note=f"{rates.flagged}/{rates.benign} benign look-alikes flagged")


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("call deleteFunction", "call delete function"),
        ("invoke delete-function", "invoke delete function"),
        ("lambda:DeleteFunction", "lambda delete function"),
        ("\uff44\uff45\uff4c\uff45\uff54\uff45\uff3f\uff46\uff55\uff4e\uff43\uff54\uff49\uff4f\uff4e", "delete function"),
        ("Ig\u200bn\u202eore", "ignore"),
        ("Ign\u043ere", "ignore"),
        ("i g n o r e  this", "ignore this"),
    ],
)
def test_fold_undoes_spelling_tricks(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_summary_line_is_printable_for_a_readme() -> None:
    from selfheal.cheatsheet.guard_rates import guard_rates

    rates = guard_rates(CORPUS)
    line = rates.summary()
    assert line.startswith(f"caught {rates.caught}/{rates.attacks} attacks (")
    assert "benign look-alikes" in line and "\n" not in line
