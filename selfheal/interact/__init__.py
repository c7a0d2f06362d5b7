"""How people talk to selfheal about its runs and what it learned.

One module per capability, each a library call the CLI (and a chat/UI layer) uses;
nothing here prints:

* :mod:`~selfheal.interact.feedback` — scores, comments and corrections on runs;
* :mod:`~selfheal.interact.ask` — ``ask(settings, question) -> AskResult``: a question in plain
  words as a validated LangSmith filter, and a summary of the runs it matches;
* :mod:`~selfheal.interact.explain` — ``explain(settings, run_id, question) -> Explanation``:
  a run's steps, evidence and context, summarised with checked citations;
* :mod:`~selfheal.interact.teach` — ``teach(settings, text, ...) -> TeachResult``: a person's
  lesson as a user-authored entry or instruction, through the curation guard, as a PR;
* :mod:`~selfheal.interact.cheatsheet_review` — ``list_entries`` / ``show_entry`` /
  ``search_entries``: entries with counters, lift and provenance.
"""

from __future__ import annotations
