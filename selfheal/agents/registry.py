"""Find agent plug-ins: entry points (group ``selfheal.agents``) or ``agent_factory`` in selfheal.yaml.

An entry point maps an agent name to a zero-argument factory returning an
:class:`~selfheal.agents.protocol.AgentPlugin`; ``agent_factory: "module:factory"``
does the same for a module in the team's own repository (imported with the
repository root on ``sys.path``). Every failure is one :class:`ConfigError`
line naming the agent, where it comes from, and the cause.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.agents.protocol import REQUIRED_METHODS
from selfheal.errors import ConfigError

if TYPE_CHECKING:
    from selfheal.agents.protocol import AgentPlugin
    from selfheal.config import Settings

ENTRY_POINT_GROUP = "selfheal.agents"


@dataclass(frozen=True)
class AgentSource:
    """Where an agent comes from: an installed entry point or the configured factory."""

    name: str
    kind: str  # "entry_point" | "factory"
    target: str  # "module:attr"
    dist: str | None = None
    version: str | None = None

    def describe(self) -> str:
        if self.kind == "factory":
            return f"agent_factory {self.target}"
        dist = f"{self.dist} {self.version}" if self.dist else "unknown distribution"
        return f"entry point {self.target} ({dist})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "dist": self.dist,
            "version": self.version,
        }


def entry_point_sources() -> dict[str, AgentSource]:
    """Agents installed as entry points, by name (the first distribution wins on a clash)."""
    out: dict[str, AgentSource] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in out:
            continue
        dist = getattr(ep, "dist", None)
        out[ep.name] = AgentSource(
            name=ep.name,
            kind="entry_point",
            target=ep.value,
            dist=getattr(dist, "name", None) if dist is not None else None,
            version=getattr(dist, "version", None) if dist is not None else None,
        )
    return out


def agent_sources(settings: Settings) -> list[AgentSource]:
    """Every agent this repository can see: the configured factory first, then entry points."""
    sources = entry_point_sources()
    factories = settings.agent_factory
    if isinstance(factories, str):
        factories = {settings.agent: factories}
    for name, target in (factories or {}).items():
        sources[name] = AgentSource(name=name, kind="factory", target=target)
    return sorted(sources.values(), key=lambda s: (s.kind != "factory", s.name))


def load_object(target: str, *, root: Path | None = None) -> Any:
    """``"package.module:attr"`` -> the attribute; ``root`` goes on ``sys.path`` first (a team's module).

    Raises ImportError / AttributeError / ValueError as they come; callers word them.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"'{target}' is not 'module:attribute'")
    if root is not None:
        path = str(Path(root).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _build(name: str, source: AgentSource, load: Callable[[], Any]) -> AgentPlugin:
    where = source.describe()
    try:
        factory = load()
    except Exception as exc:
        raise ConfigError(f"agent '{name}': cannot import {where}: {_one_line(exc)}") from None
    if not callable(factory):
        raise ConfigError(f"agent '{name}': {where} is not callable")
    try:
        plugin = factory()
    except Exception as exc:
        raise ConfigError(f"agent '{name}': {where} raised {_one_line(exc)}") from None
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(plugin, m, None))]
    if not isinstance(getattr(plugin, "name", None), str):
        missing.insert(0, "name")
    if missing:
        raise ConfigError(
            f"agent '{name}': {where} returned {type(plugin).__name__}, not an AgentPlugin"
            f" (missing: {', '.join(missing)})"
        )
    return plugin  # type: ignore[no-any-return]


def get_agent(settings: Settings, name: str | None = None) -> AgentPlugin:
    """The plug-in for ``name`` (default ``settings.agent``).

    A factory configured for that agent (``agent_factory`` in selfheal.yaml)
    wins; otherwise the entry point of that name in group ``selfheal.agents``.
    """
    name = name or settings.agent
    factory = settings.factory_for(name)
    if factory:
        source = AgentSource(name=name, kind="factory", target=factory)
        return _build(name, source, lambda: load_object(factory, root=settings.root))
    sources = entry_point_sources()
    source = sources.get(name)
    if source is None:
        known = ", ".join(sorted(sources)) or "none installed"
        raise ConfigError(
            f"agent '{name}': no such agent (known: {known}); install its package"
            f" (entry point group '{ENTRY_POINT_GROUP}') or set agent_factory: module:factory in selfheal.yaml"
        )
    ep = next(ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name)
    return _build(name, source, ep.load)
