"""Entry point of the lambda_ops agent (group ``selfheal.agents``, name ``lambda_ops``)."""

from __future__ import annotations

from lambda_ops.domain import LambdaOpsAgent


def make_agent() -> LambdaOpsAgent:
    """A zero-argument factory returning the plug-in; boto3/moto load when an environment opens."""
    return LambdaOpsAgent()
