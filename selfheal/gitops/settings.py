"""The ``gitops:`` section of selfheal.yaml: who commits, where to push, how often.

Kept here (not in config.py) so gitops owns its defaults; the CLI and library
read it through :func:`gitops_settings`, which falls back to these defaults
until the section is wired into :class:`selfheal.config.Settings`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from selfheal.config import GitopsSettings

__all__ = ["GitopsSettings", "gitops_settings"]


# The schema lives in config.py (one place per schema); re-exported here for gitops.


def gitops_settings(settings: Any) -> GitopsSettings:
    """The configured section, or the defaults when config.py does not define one yet."""
    found = getattr(settings, "gitops", None)
    if isinstance(found, GitopsSettings):
        return found
    if isinstance(found, BaseModel):
        return GitopsSettings.model_validate(found.model_dump())
    if isinstance(found, dict):
        return GitopsSettings.model_validate(found)
    return GitopsSettings()
