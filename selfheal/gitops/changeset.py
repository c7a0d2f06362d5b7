"""A change set: what an improvement changes, why, and the evidence, as one reviewable unit.

The curator, optimizer and rollback build one; :func:`selfheal.gitops.publish.publish_change`
turns it into a branch, a commit with trailers and a pull request. Trailers make
the git history itself the audit trail (``selfheal history`` reads them back).
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfheal import __version__

Kind = Literal["curate", "optimize", "rollback", "manual"]
KINDS: tuple[str, ...] = ("curate", "optimize", "rollback", "manual")

# Trailer keys (git interpret-trailers format: ``Key: value`` lines at the end of the message).
T_KIND = "Selfheal-Kind"
T_EVAL = "Selfheal-Eval"
T_TRACES = "Selfheal-Traces"
T_MODEL = "Selfheal-Model"
T_VERSION = "Selfheal-Version"
T_ENTRIES = "Selfheal-Entries"
T_REVERTS = "Selfheal-Reverts"
T_PR = "Selfheal-PR"


class FileChange(BaseModel):
    """One file's new content (``None`` deletes it); ``path`` is repository-relative, posix."""

    model_config = ConfigDict(extra="forbid")

    path: str
    content: str | None

    @field_validator("path")
    @classmethod
    def _inside_repo(cls, v: str) -> str:
        p = PurePosixPath(v.replace("\\", "/"))
        if not v or p.is_absolute() or ".." in p.parts or p.parts[:1] == (".git",):
            raise ValueError(f"{v!r}: must be a relative path inside the repository")
        return p.as_posix()


class EvalSummary(BaseModel):
    """The evaluation behind a change: baseline vs candidate on one dataset split."""

    model_config = ConfigDict(extra="forbid")

    baseline_rate: float
    candidate_rate: float
    n: int
    p_value: float | None = None
    dataset: str = ""
    split: str = ""
    report_markdown: str = ""

    def trailer(self) -> str:
        """``baseline 62.5% -> candidate 75.0% (n=8, p=0.25)``."""
        p = "" if self.p_value is None else f", p={self.p_value:.3g}"
        return f"baseline {self.baseline_rate:.1%} -> candidate {self.candidate_rate:.1%} (n={self.n}{p})"


class ChangeSet(BaseModel):
    """One improvement (or rollback): files, a title, one summary line per change with its reason."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    title: str
    summary: list[str] = Field(default_factory=list)
    files: list[FileChange]
    trace_ids: list[str] = Field(default_factory=list)
    eval_summary: EvalSummary | None = None
    model: str = ""
    reverts: str | None = None       # the commit a rollback undoes (``Selfheal-Reverts`` trailer)

    @field_validator("title")
    @classmethod
    def _one_line(cls, v: str) -> str:
        line = " ".join(v.split())
        if not line:
            raise ValueError("a change needs a title")
        return line

    def fingerprint(self) -> str:
        """Stable id of the change's content (paths + new contents), to find its PR again."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            h.update(f.path.encode() + b"\0")
            h.update(b"\1" if f.content is None else b"\2" + f.content.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]

    def branch_name(self, today: date | None = None) -> str:
        """``selfheal/<kind>/<YYYY-MM-DD>-<slug>``."""
        day = (today or date.today()).isoformat()
        return f"selfheal/{self.kind}/{day}-{slugify(self.title)}"


def slugify(text: str, max_len: int = 48) -> str:
    """Lowercase words joined by ``-``, cut at a word boundary (a valid ref component)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ""
    for w in words:
        nxt = f"{out}-{w}" if out else w
        if len(nxt) > max_len:
            break
        out = nxt
    return out or "change"


def commit_message(change: ChangeSet, entries: list[str], *, extra: dict[str, str] | None = None) -> str:
    """Subject = title; body = the summary lines; then the ``Selfheal-*`` trailers."""
    trailers: list[tuple[str, str]] = [(T_KIND, change.kind)]
    if change.eval_summary is not None:
        trailers.append((T_EVAL, change.eval_summary.trailer()))
    if change.trace_ids:
        trailers.append((T_TRACES, ", ".join(change.trace_ids)))
    if change.model:
        trailers.append((T_MODEL, " ".join(change.model.split())))
    trailers.append((T_VERSION, __version__))
    if entries:
        trailers.append((T_ENTRIES, ", ".join(entries)))
    if change.reverts:
        trailers.append((T_REVERTS, change.reverts))
    trailers += list((extra or {}).items())
    body = "\n".join(" ".join(line.split()) for line in change.summary if line.strip())
    parts = [change.title]
    if body:
        parts.append(body)
    parts.append("\n".join(f"{k}: {v}" for k, v in trailers))
    return "\n\n".join(parts) + "\n"


def parse_trailers(text: str) -> dict[str, str]:
    """``Key: value`` trailer lines of a commit message's last paragraph (first value wins)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*)$", line.strip())
        if not m:
            return {}  # not a trailer block
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def split_list(value: str | None) -> list[str]:
    """A comma-separated trailer value as a list."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]
