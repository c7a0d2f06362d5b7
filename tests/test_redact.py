"""Redaction: planted secrets never survive, look-alikes do, inputs are untouched."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections import namedtuple
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.secrets_corpus import (
    AKID,
    AWS_SECRET,
    AWS_SECRET_2,
    AWS_SECRET_3,
    JWT,
    LOOKALIKES,
    PLANTED,
    REPORT_LINE,
    LookAlike,
    Planted,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfheal.config import load_settings
from selfheal.errors import ConfigError, SelfhealError
from selfheal.redact import Redactor, make_redactor

R = Redactor()


def _leaves(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _leaves(v)]
    if isinstance(obj, (list, tuple)):
        return [s for v in obj for s in _leaves(v)]
    return []


def _all_text(obj: Any) -> str:
    """Everything a reader of the stored trace could see: JSON and raw string leaves."""
    return json.dumps(obj, ensure_ascii=False, default=str) + "\n" + "\n".join(_leaves(obj))


# -- the corpus -----------------------------------------------------------------


def test_corpus_is_big_and_covers_every_kind() -> None:
    secrets = {s for p in PLANTED for s in p.secrets}
    assert len(secrets) >= 40
    assert len(LOOKALIKES) >= 20
    kinds = {k for p in PLANTED for k in p.kinds}
    assert kinds >= {
        "email", "aws_access_key_id", "aws_secret_access_key", "bearer_token", "basic_auth", "jwt",
        "openai_api_key", "anthropic_api_key", "langsmith_api_key", "github_token", "slack_token",
        "api_key", "secret", "password", "private_key", "ipv4", "ipv6", "aws_account_id",
    }  # fmt: skip
    for s in (AWS_SECRET, AWS_SECRET_2, AWS_SECRET_3):
        assert len(s) == 40


@pytest.mark.parametrize("item", PLANTED, ids=lambda p: p.label)
def test_planted_secret_is_redacted(item: Planted) -> None:
    out = _all_text(R.redact(item.payload))
    for secret in item.secrets:
        assert secret not in out, f"{item.label}: {secret!r} survived in {out[:400]}"
    for kind in item.kinds:
        assert f"[REDACTED:{kind}]" in out, f"{item.label}: no {kind} placeholder in {out[:400]}"


@pytest.mark.parametrize("item", LOOKALIKES, ids=lambda p: p.label)
def test_lookalike_survives(item: LookAlike) -> None:
    out = _all_text(R.redact(item.payload))
    for survivor in item.survivors:
        assert survivor in out, f"{item.label}: {survivor!r} was redacted: {out[:400]}"


def test_pure_lookalike_payloads_are_returned_equal() -> None:
    """Payloads with nothing secret at all come back exactly equal."""
    untouched = [
        la for la in LOOKALIKES if "ARN" not in la.label and "secret names" not in la.label
    ]
    assert len(untouched) >= 20
    for item in untouched:
        assert R.redact(item.payload) == item.payload, item.label


def test_input_is_never_mutated() -> None:
    for item in [*PLANTED, *LOOKALIKES]:
        before = copy.deepcopy(item.payload)
        R.redact(item.payload)
        assert item.payload == before, item.label


def test_redaction_is_idempotent_on_the_corpus() -> None:
    for item in [*PLANTED, *LOOKALIKES]:
        once = R.redact(item.payload)
        assert R.redact(once) == once, item.label


# -- what a reader of the trace sees ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"Authorization: Bearer {JWT}", "Authorization: Bearer [REDACTED:bearer_token]"),
        (f"aws_access_key_id={AKID}", "aws_access_key_id=[REDACTED:aws_access_key_id]"),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:resize",
            "arn:aws:lambda:us-east-1:[REDACTED:aws_account_id]:function:resize",
        ),
        ("mail ops@example.com now", "mail [REDACTED:email] now"),
        ('{"password": "a b c", "user": "x"}', '{"password": "[REDACTED:secret]", "user": "x"}'),
        ("postgres://u:pw123@db:5432/x", "postgres://u:[REDACTED:password]@db:5432/x"),
        ("from 10.1.2.3 via 127.0.0.1", "from [REDACTED:ipv4] via 127.0.0.1"),
        (REPORT_LINE, REPORT_LINE),
        ("", ""),
    ],
)
def test_redact_text_keeps_the_context(text: str, expected: str) -> None:
    assert R.redact_text(text) == expected


def test_secret_keys_are_replaced_whole_and_keep_their_shape() -> None:
    out = R.redact(
        {
            "api_key": 123456,
            "Authorization": "Basic dXNlcjpwdw==",
            "credentials": {
                "AccessKeyId": AKID,
                "Expiration": datetime(2026, 11, 1, tzinfo=UTC),
                "valid": True,
            },
            "tokens": ["abc", "def"],
            "password": None,
            "total_tokens": 42,
            "secret_name": "prod/db",
        }
    )
    assert out == {
        "api_key": "[REDACTED:api_key]",
        "Authorization": "[REDACTED:secret]",
        "credentials": {
            "AccessKeyId": "[REDACTED:aws_access_key_id]",
            "Expiration": "[REDACTED:secret]",
            "valid": True,
        },
        "tokens": ["abc", "def"],
        "password": None,
        "total_tokens": 42,
        "secret_name": "prod/db",
    }


def test_non_json_leaves_and_container_types_are_kept() -> None:
    Point = namedtuple("Point", "x y")
    marker = object()
    when = datetime(2026, 11, 1, tzinfo=UTC)
    rid = uuid.uuid4()
    payload = {
        "when": when,
        "id": rid,
        "obj": marker,
        "raw": b"a@b.com",
        "pair": ("x", "a@b.com"),
        "pt": Point("10.0.0.9", 2),
    }
    out = R.redact(payload)
    assert (
        out["when"] is when
        and out["id"] is rid
        and out["obj"] is marker
        and out["raw"] == b"a@b.com"
    )
    assert out["pair"] == ("x", "[REDACTED:email]") and isinstance(out["pair"], tuple)
    assert out["pt"] == Point("[REDACTED:ipv4]", 2) and isinstance(out["pt"], Point)


def test_cycles_do_not_recurse_forever() -> None:
    loop: dict[str, Any] = {"email": "a@example.com"}
    loop["self"] = loop
    out = R.redact(loop)
    assert out["email"] == "[REDACTED:email]"


# -- configuration --------------------------------------------------------------


def test_extra_patterns_are_redacted_as_custom() -> None:
    r = Redactor([r"EMP-\d{6}", r"ticket=(?P<secret>[A-Z]{3}\d+)"])
    assert r.redact_text("owner EMP-123456, ticket=ABC42 open") == (
        "owner [REDACTED:custom], ticket=[REDACTED:custom] open"
    )
    once = r.redact({"note": "EMP-000001 and a@b.io"})
    assert once == {"note": "[REDACTED:custom] and [REDACTED:email]"}
    assert r.redact(once) == once


@pytest.mark.parametrize("bad", ["EMP-(\\d+", "[unclosed", "(?P<x>a)(?P<x>b)"])
def test_invalid_extra_pattern_is_a_user_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Redactor([r"ok\d+", bad])
    assert isinstance(exc.value, SelfhealError)
    assert repr(bad) in str(exc.value) and "\n" not in str(exc.value)


def test_pattern_matching_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match="empty string"):
        Redactor([r"x*"])


def test_placeholder_format_is_configurable() -> None:
    r = Redactor(placeholder_fmt="<{kind} removed>")
    out = r.redact_text("key AKIAIOSFODNN7EXAMPLE from 8.8.4.4")
    assert out == "key <aws_access_key_id removed> from <ipv4 removed>"
    assert r.redact_text(out) == out
    with pytest.raises(ConfigError):
        Redactor(placeholder_fmt="REDACTED")
    with pytest.raises(ConfigError):
        Redactor(placeholder_fmt="{kind}")


def test_make_redactor_reads_settings_and_extra_patterns(tmp_path: Any) -> None:
    real = make_redactor(load_settings(tmp_path))  # no redact_patterns field yet
    assert real.redact_text("x EMP-123456 a@b.io") == "x EMP-123456 [REDACTED:email]"
    fake = SimpleNamespace(tracing=SimpleNamespace(redact_patterns=[r"EMP-\d{6}"]))
    r = make_redactor(fake, extra_patterns=[r"CUST-\d+"])  # type: ignore[arg-type]
    assert r.redact_text("EMP-123456 CUST-9") == "[REDACTED:custom] [REDACTED:custom]"
    assert make_redactor(fake) is make_redactor(fake)  # type: ignore[arg-type]


# -- speed ----------------------------------------------------------------------


def test_ten_kilobyte_payload_is_fast() -> None:
    chunks = [json.dumps(p.payload) for p in PLANTED] + [
        json.dumps(la.payload) for la in LOOKALIKES
    ]
    prose = "The function timed out after 3.00 seconds while calling the orders API. " * 20
    text = ""
    while len(text) < 10_000:
        text += chunks[len(text) % len(chunks)] + "\n" + prose[:400] + "\n"
    payload = {
        "inputs": {"messages": [{"type": "human", "content": text[:5000]}]},
        "outputs": {"output": text[5000:10_000]},
    }
    R.redact(payload)
    batches = []
    for _ in range(5):  # best of 5: other processes share this machine's 2 cores
        start = time.perf_counter()
        for _ in range(4):
            R.redact(payload)
        batches.append((time.perf_counter() - start) / 4)
    ms_per_kb = min(batches) * 1000 / 10
    print(f"redact: {ms_per_kb:.3f} ms per KB")
    assert ms_per_kb < 1.0  # typically ~0.3 on the 2-core CI machine


# -- properties -----------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_fragments = st.sampled_from(
    [
        AKID, AWS_SECRET, JWT, "Bearer ", "Authorization: ", "password=", '"secret": "', "api_key=",
        "a@b.co", "@", ".", ":", "::", "10.0.0.1", "fe80::1", "arn:aws:iam::123456789012:", "account ",
        "123456789012", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "sk-",
        "x" * 20, "[REDACTED:", "]", "://u:", "@h", " ", "\n", '"', "'", "=", "\\",
    ]
)  # fmt: skip
_secretish_text = st.lists(_fragments | st.text(max_size=6), max_size=12).map("".join)
_secret_keys = st.sampled_from(
    ["password", "api_key", "Authorization", "token", "AccountId", "SecretAccessKey", "name"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_redact_never_raises_is_idempotent_and_pure(obj: Any) -> None:
    before = copy.deepcopy(obj)
    once = R.redact(obj)
    assert obj == before
    assert R.redact(once) == once


@settings(max_examples=400, deadline=None)
@given(_secretish_text)
def test_redact_text_is_idempotent_on_secret_shaped_text(text: str) -> None:
    once = R.redact_text(text)
    assert R.redact_text(once) == once


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_secret_keys, _json | _secretish_text, max_size=4))
def test_secret_keyed_dicts_are_idempotent(obj: dict[str, Any]) -> None:
    once = R.redact(obj)
    assert R.redact(once) == once


def test_a_sql_like_pattern_of_a_domain_is_not_an_email() -> None:
    """A SQL agent's lesson ("exclude '%@corp.example' accounts") must survive redaction; people do not."""
    from selfheal.redact import Redactor

    r = Redactor()
    kept = "WHERE c.email NOT LIKE '%@brightcart.io' AND x LIKE '_%@test.example'"
    assert r.redact_text(kept) == kept
    assert "jane.doe" not in r.redact_text("WHERE c.email = 'jane.doe@brightcart.io'")
    assert "%j" not in r.redact_text("LIKE '%j.smith@corp.example'")
