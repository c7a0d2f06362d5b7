"""Simulated accounts reuse pooled botocore clients without ever seeing each other's data."""

from __future__ import annotations

import pytest
from helpers.lambda_ops import scenario

from lambda_ops.aws import SimulatedAccount


def _names(account: SimulatedAccount) -> set[str]:
    return {f["FunctionName"] for f in account.clients.lambda_.list_functions()["Functions"]}


def test_a_closed_accounts_clients_serve_the_next_account_and_only_it() -> None:
    with SimulatedAccount(None):  # keeps moto started, as an evaluation does
        first = SimulatedAccount(scenario("lambda_timeout")).open()
        seeded = _names(first)
        assert seeded
        lambda_client = first.clients.lambda_
        first.close()

        with SimulatedAccount(None) as empty:
            assert empty.clients.lambda_ is lambda_client  # reused, not rebuilt
            assert _names(empty) == set()  # ...but bound to the new account
            # The simulated APIs (not in moto) answer for the new account too.
            assert empty.clients.lambda_.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 1000


def test_open_accounts_never_share_a_client() -> None:
    with SimulatedAccount(None) as a, SimulatedAccount(None) as b:
        assert a.clients.lambda_ is not b.clients.lambda_
        assert a.clients.logs is not b.clients.logs


def test_a_closed_accounts_clients_refuse_calls_until_reused() -> None:
    with SimulatedAccount(None):
        account = SimulatedAccount(None).open()
        client = account.clients.lambda_
        account.close()
        with pytest.raises(RuntimeError, match="closed"):
            client.list_functions()
