"""Task classification on phrases an operator would type."""

from __future__ import annotations

import pytest

from lambda_ops.classify import classify_task


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("checkout-api has been timing out since yesterday, fix it", "lambda_timeout"),
        ("Task timed out after 3.00 seconds in orders-api", "lambda_timeout"),
        ("image-resizer is getting OOM killed", "lambda_memory"),
        ("Runtime exited with error: signal: killed in thumbnailer", "lambda_memory"),
        ("raise the memory of report-builder, it runs out of memory", "lambda_memory"),
        ("search-api is slow on the first request after being idle", "lambda_cold_start"),
        ("reduce cold starts of the login function", "lambda_cold_start"),
        ("orders-processor is being throttled during the sale", "lambda_throttling"),
        ("we get 429 TooManyRequests from the orders function", "lambda_throttling"),
        ("Our Lambda bill doubled; right-size invoice-api", "lambda_cost"),
        ("lower the memory of invoice-api to save money", "lambda_cost"),
        ("error rate of payments-api jumped after the last deploy", "lambda_errors"),
        ("roll back payments-api, the new release is failing", "lambda_errors"),
        ("show me the p99 duration of checkout-api over the last week", "cloudwatch_query"),
        ("how many errors did payments-api log yesterday?", "cloudwatch_query"),
        ("which functions use the most memory", "cloudwatch_query"),
        ("rename the staging alias", "general"),
        ("", "general"),
    ],
)
def test_classify(task: str, expected: str) -> None:
    assert classify_task(task) == expected


def test_questions_that_ask_for_a_fix_are_not_queries() -> None:
    assert classify_task("show me why checkout-api times out and fix it") == "lambda_timeout"


@pytest.mark.parametrize(
    "task",
    [
        "provisioned concurrency is configured on the wrong alias of login-api",
        "the canary weight of pricing-api was left at 20 %, clean it up",
        "billing-sync still has provisioned concurrency on an old version",
        "fix the misconfiguration in report-api's aliases",
    ],
)
def test_configuration_mistakes(task: str) -> None:
    assert classify_task(task) == "lambda_config"
