"""Errors of the trace store a user can cause (wrong file, unknown run id)."""

from __future__ import annotations

from selfheal.errors import SelfhealError


class TraceStoreError(SelfhealError):
    """The trace store file cannot be opened, migrated or written; names the file."""


class RunNotFoundError(TraceStoreError):
    """A run id given by the user is not in the store."""
