"""Task text -> task type, by ordered keyword rules.

The task type keys cheatsheet retrieval and per-type metrics, so it must be
stable and explainable: regex rules, most specific first, no model call.
``lambda_misleading`` is never returned: a misleading task reads like its
surface symptom by construction, so only a scenario file can say it is one.
"""

from __future__ import annotations

import re

# Order matters: the first rule that matches wins. Specific symptoms come
# before generic ones ("OOM errors" is memory, "timeouts after deploy" is timeout).
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        # A setting on the wrong qualifier or left behind: before cold starts, because
        # "provisioned concurrency on the wrong alias" is a configuration mistake.
        "lambda_config",
        re.compile(
            r"(wrong|old|stale|previous|other) (alias|version|qualifier)"
            r"|misconfigur|config(uration)? (drift|mistake|left)|left (over|behind)|leftover"
            r"|canary (weight|routing|traffic)|weighted routing|(stuck|left) (at|on) \d+ ?%"
        ),
    ),
    (
        "lambda_cold_start",
        re.compile(
            r"cold[- ]?starts?|init(ialization)?[ _]duration|provisioned concurrency|snapstart|warm[- ]?up"
            r"|after (a |being |long )?idle|first (request|invocation)s?"
        ),
    ),
    (
        "lambda_throttling",
        re.compile(r"throttl|\b429\b|toomanyrequests|rate exceeded|concurrency limit|reserved concurrency"),
    ),
    (
        "lambda_cost",
        re.compile(
            r"\bcosts?\b|\bbill(ing)?\b|expensive|spend(ing)?\b|over[- ]?provision|right[- ]?siz|save money|cheaper"
        ),
    ),
    ("lambda_timeout", re.compile(r"time[sd]? ?out|timing out|task timed out")),
    (
        "lambda_memory",
        re.compile(r"\boom\b|out of memory|memory|signal: killed|runtime\.exiterror|max memory used"),
    ),
    (
        "lambda_errors",
        re.compile(
            r"\berrors?\b|error rate|exceptions?|\b5\d\d\b|failing|failures?|crash|roll ?back|bad deploy|regression"
            r"|since (the )?(last )?(deploy|release)"
        ),
    ),
)

# A question about data, with no request to change anything.
_QUERY = re.compile(
    r"^\s*(show|list|what|which|how (many|much|often)|give me|get|query|report|display|find|count|when)\b"
    r"|\b(p\d\d|percentile|average|metrics?|logs?|dashboard)\b"
)
_ACTION = re.compile(
    r"\b(fix|raise|increase|decrease|lower|reduce|set|change|tune|optimi[sz]e|resolve|roll ?back|revert"
    r"|adjust|bump|update|remediate|mitigate|stop|make)\b|\bwhy\b"
)


def classify_task(task: str) -> str:
    """The task type of an operator request (lambda_* types but misleading, cloudwatch_query or general)."""
    text = " ".join(task.lower().split())
    if _QUERY.search(text) and not _ACTION.search(text):
        return "cloudwatch_query"
    for task_type, pattern in _RULES:
        if pattern.search(text):
            return task_type
    return "general"
