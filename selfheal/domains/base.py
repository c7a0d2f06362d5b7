"""Deprecated location: the plug-in protocol now lives in :mod:`selfheal.agents`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfheal.agents.protocol import AgentPlugin as Domain
from selfheal.agents.protocol import AgentSession as DomainSession
from selfheal.agents.protocol import CheckResult, Verdict

if TYPE_CHECKING:
    pass

__all__ = ["CheckResult", "Domain", "DomainSession", "Verdict", "get_domain"]


def get_domain(name: str) -> Domain:
    """The registered domain for an agent name (lazy import: domains pull boto3/moto)."""
    from selfheal.errors import ConfigError

    if name == "lambda_ops":
        from selfheal.domains.lambda_ops.domain import LambdaOpsDomain

        return LambdaOpsDomain()  # type: ignore[return-value]
    raise ConfigError(f"agent '{name}': no such domain (known: lambda_ops)")
