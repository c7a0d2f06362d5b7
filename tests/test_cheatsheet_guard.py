"""ContentGuard: every hostile snippet is rejected (or cleaned of its secret), every look-alike passes."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.hostile_corpus import ALLOWED_TOOLS, BENIGN, HOSTILE, Benign, Hostile

from selfheal.cheatsheet.guard import ContentGuard, normalize
from selfheal.cheatsheet.store import load_cheatsheet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def guard() -> ContentGuard:
    return ContentGuard(allowed_tools=set(ALLOWED_TOOLS))


def test_corpus_is_large_enough() -> None:
    assert len([h for h in HOSTILE if not h.clean]) >= 30
    assert len(BENIGN) >= 15
    cats = {h.category for h in HOSTILE}
    assert cats >= {"injection", "jailbreak", "exfiltration", "tool", "url", "hidden", "template", "length", "secret"}


@pytest.mark.parametrize("item", HOSTILE, ids=lambda h: f"{h.category}:{h.text[:30]}")
def test_hostile_snippet_is_blocked_or_cleaned(guard: ContentGuard, item: Hostile) -> None:
    verdict = guard.check(item.text, field=item.field)
    if item.clean:
        assert verdict.ok, verdict.reasons
        assert item.secret not in verdict.text
        assert "[REDACTED:" in verdict.text
        assert any(r.startswith("redacted:") for r in verdict.reasons)
    else:
        assert not verdict.ok
        assert item.category in verdict.categories, verdict.reasons


@pytest.mark.parametrize("item", BENIGN, ids=lambda b: b.text[:40])
def test_benign_lookalike_passes_unchanged(guard: ContentGuard, item: Benign) -> None:
    verdict = guard.check(item.text, field=item.field)
    assert verdict.ok, verdict.reasons
    assert verdict.reasons == []
    assert verdict.text == item.text.strip()


def test_seed_cheatsheet_passes_the_guard(guard: ContentGuard) -> None:
    for entry in load_cheatsheet(REPO / "cheatsheet"):
        for name in entry.content_fields():
            verdict = guard.check(getattr(entry, name), field=name)
            assert verdict.ok and not verdict.reasons, (entry.id, name, verdict.reasons)


def test_tool_rule_follows_the_allowed_list() -> None:
    text = "If throttled, call delete_function and recreate it."
    assert "tool" in ContentGuard(allowed_tools={"update_memory"}).check(text).categories
    assert ContentGuard(allowed_tools={"delete_function"}).check(text).ok
    # Without a tool list, shell/code execution and destructive calls in any spelling are judged.
    assert "tool" in ContentGuard().check(text).categories
    assert "tool" in ContentGuard().check("If throttled, invoke DeleteFunction and recreate it.").categories
    assert ContentGuard().check("If throttled, call update_memory with 2x the memory.").ok
    assert not ContentGuard().check("Execute bash to restart the runtime.").ok


def test_length_bounds_are_configurable() -> None:
    g = ContentGuard(max_chars=20, min_chars=3)
    assert g.check("Raise it.").ok
    assert g.check("Raise memory by half and check again").reasons[0].startswith("length:")
    assert not ContentGuard().check("   ok   ").ok  # trimmed before measuring


def test_text_is_trimmed_and_redaction_is_idempotent(guard: ContentGuard) -> None:
    first = guard.check("  Alerts go to ops@example.com when throttled.  \n")
    assert first.ok and first.text == "Alerts go to [REDACTED:email] when throttled."
    again = guard.check(first.text)
    assert again.ok and again.text == first.text and again.reasons == []


def test_normalized_duplicates() -> None:
    assert normalize("Raise memory 1.5-2x, NOT the timeout!") == normalize("raise  memory 1.5 2x not the timeout")
    existing = [("heur-a", "When x: Raise memory 2x."), ("heur-b", "When y: Check VPC.")]
    assert ContentGuard.duplicate_of("when X: raise MEMORY 2x", existing) == "heur-a"
    assert ContentGuard.duplicate_of("when X: raise memory 3x", existing) is None
