"""Numbers for the README's reliability table, written by the tests that measure them.

``bench/reliability.py`` runs those tests with ``RELIABILITY_TABLE_OUT``
pointing at a file; each test calls :func:`record` with what it tried and
what held. Outside that script (the normal suite) :func:`record` does nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ENV = "RELIABILITY_TABLE_OUT"  # not SELFHEAL_*: the test suite scrubs those, selfheal rejects unknown ones


def record(area: str, *, tried: int, held: int, lost: int = 0, unit: str = "", note: str = "") -> None:
    """Append one measurement (an area may be recorded by several tests; the script adds them up)."""
    out = os.environ.get(ENV)
    if not out:
        return
    row = {"area": area, "tried": tried, "held": held, "lost": lost, "unit": unit, "note": note}
    with Path(out).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
