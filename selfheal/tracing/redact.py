"""Moved: redaction is a neutral module (:mod:`selfheal.redact`) shared by tracing and the cheatsheet guard."""

from selfheal.redact import DEFAULT_PLACEHOLDER, Redactor, make_redactor

__all__ = ["DEFAULT_PLACEHOLDER", "Redactor", "make_redactor"]
