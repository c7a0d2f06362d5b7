"""Redact secrets and PII from trace payloads before they are stored or sent to LangSmith.

Traces hold tool outputs, log lines and error messages verbatim, so whatever a
tool printed (a key in an env dump, an email in a log, an account id in an
ARN) would otherwise land in the local store and in LangSmith. A
:class:`Redactor` replaces each finding with ``[REDACTED:<kind>]`` and keeps the
surrounding text (``Authorization: Bearer [REDACTED:bearer_token]``) so the
trace stays readable.

What is found (kind in brackets):

* PEM private key blocks [private_key], even when truncated;
* AWS access key ids ``AKIA…``/``ASIA…`` [aws_access_key_id]; AWS secret keys
  [aws_secret_access_key] after an ``aws_secret_access_key``-like name, right
  after an access key id, as the value of such a dict key, or bare (below);
* ``Authorization:`` header values [bearer_token, basic_auth, auth_token],
  ``Bearer <token>`` (the token must contain a digit, so prose like "a bearer
  token" survives), JWTs [jwt];
* OpenAI ``sk-…``/``sk-proj-…`` [openai_api_key] (``sk-ant-…`` [anthropic_api_key]),
  LangSmith ``lsv2_pt_…``/``lsv2_sk_…`` [langsmith_api_key], GitHub ``ghp_``,
  ``gho_``, ``github_pat_…`` [github_token], Slack ``xox?-…`` [slack_token],
  Stripe ``sk_live_…``/``rk_test_…`` [stripe_api_key], Google ``AIza…`` [google_api_key];
* assignments in text (``api_key=…`` [api_key]; ``password=``, ``secret:``,
  ``token=``, ``client_secret``, ``signature``, … [secret]), passwords in URLs
  (``scheme://user:pass@``) [password];
* bare AWS secret keys [aws_secret_access_key]: any 40-character base64 run with
  at least 3 upper-case, 3 lower-case letters and a digit (not a path with a
  lower-case segment), which no git SHA, hex digest or uuid is;
* emails [email]; IPv4 and IPv6 addresses [ipv4, ipv6] -- except loopback and
  unspecified addresses (127.0.0.0/8, 0.0.0.0, ::1, ::), which identify nobody
  and keep "listening on 127.0.0.1:8080" readable. An IPv4 needs four octets
  <= 255, so versions like 3.11.7 survive (a four-part version such as 1.2.3.4
  cannot be told from an address and is redacted);
* AWS account ids [aws_account_id] inside ARNs, after "account"/"AccountId",
  in ``amazonaws.com/<id>/`` URLs and ECR hosts;
* values of dict keys that name a secret (``password``, ``api_key``,
  ``Authorization``, ``SecretAccessKey``, ``access_token``, …) are replaced
  whole -- every leaf of a nested value, keeping its shape; keys about a secret
  rather than holding one (``total_tokens``, ``token_usage``, ``secret_name``,
  ``SecretId``, ``session_id``) are left alone;
* extra regexes from settings [custom]; a named group ``secret`` limits the
  replacement to that group.

Dict keys themselves are never rewritten (two keys could collide). Redaction is
idempotent (``redact(redact(x)) == redact(x)``): placeholders never match again.

Speed: one alternation of all rules, entered only at word starts, and per string
only the rules whose literal trigger (``@``, ``arn:``, ``AKIA``…) occurs in it;
about 0.2-0.5 ms per KB.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from selfheal.errors import ConfigError

if TYPE_CHECKING:
    from selfheal.config import Settings

__all__ = ["DEFAULT_PLACEHOLDER", "Redactor", "install_log_redaction", "make_redactor"]

DEFAULT_PLACEHOLDER = "[REDACTED:{kind}]"
_MAX_PASSES = 8

# Characters that end an unquoted secret value in text.
_VALUE_CHARS = r"""[^\s"'\\,;&)}\]<>]"""
# An optional quote around a key or value, possibly JSON-escaped once (\").
_Q = r"""(?:\\?["'])?"""
_SEP = rf"""{_Q}\s*[:=]\s*"""
_NOT_LITERAL = rf"(?!(?i:null|none|true|false|undefined)(?!{_VALUE_CHARS}))"


def _value(name: str, ph: str) -> str:
    """A secret value after a separator: double-, single- or un-quoted; never a placeholder."""
    return (
        rf"""(?:\\?"(?!{ph})(?P<{name}__q>[^"\\\n]+)\\?\""""
        rf"""|\\?'(?!{ph})(?P<{name}__s>[^'\\\n]+)\\?'"""
        rf"""|(?!{ph}){_NOT_LITERAL}(?P<{name}__v>{_VALUE_CHARS}+))"""
    )


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = rf"(?<![A-Za-z0-9.])(?:{_OCTET}\.){{3}}{_OCTET}(?![A-Za-z0-9]|\.\d)"
_IPV4_RE = re.compile(_IPV4)
_SECRET_KEYWORDS = (
    r"(?:pg|db|mysql|redis|root|admin|user)?(?:password|passwd)|passphrase|client[_-]?secret"
    r"|secret(?:[_-]?(?:key|string|access[_-]?key|token))?"
    r"|private[_-]?key|access[_-]?key|token|credentials?|signature|sessionid"
)

# Specific formats: used as rules and to name what a generic assignment held.
_SPECIFIC: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws_access_key_id", re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")),
    ("anthropic_api_key", re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}")),
    ("openai_api_key", re.compile(r"sk-[A-Za-z0-9_-]{20,}")),
    ("langsmith_api_key", re.compile(r"lsv2_(?:pt|sk)_[A-Za-z0-9_]{20,}|ls__[A-Za-z0-9]{20,}")),
    ("github_token", re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,}")),
    ("slack_token", re.compile(r"xox[abposre]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}")),
    ("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("stripe_api_key", re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("google_api_key", re.compile(r"AIza[A-Za-z0-9_-]{35}")),
)


def _specific_kind(value: str) -> str | None:
    for kind, pat in _SPECIFIC:
        if pat.fullmatch(value):
            return kind
    return None


def _rules(ph: str) -> list[tuple[str, str, Mapping[str, str]]]:
    """(rule name, regex, value-group -> kind). No value groups: the whole match is secret."""
    v = functools.partial(_value, ph=ph)
    gen = {"__q": "secret", "__s": "secret", "__v": "secret"}
    return [
        (
            "pem",
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            {"": "private_key"},
        ),
        (
            "urlpw",
            rf"(?i:[a-z][a-z0-9+.-]{{0,20}}://)(?!{ph})[^\s:/@\[\]]{{1,256}}:(?!{ph})(?P<urlpw__v>[^\s:/@]{{1,256}})@",
            {"__v": "password"},
        ),
        (
            "authz",
            rf"(?i:\bauthorization){_SEP}{_Q}"
            r"(?P<authz__scheme>(?i:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+)?"
            rf"(?!{ph})(?!(?i:bearer|basic|token|digest|negotiate)\b)"
            rf"(?P<authz__v>{_VALUE_CHARS}+)",
            {"__v": "@authz"},
        ),
        (
            "bearer",
            rf"(?i:\bbearer)\s+(?!{ph})"
            r"(?P<bearer__v>(?=[A-Za-z0-9\-._~+/]*\d)[A-Za-z0-9\-._~+/]{8,}=*)",
            {"__v": "bearer_token"},
        ),
        (
            "awssec",
            r"(?i:(?<![A-Za-z])(?:aws[_\s-]?)?secret[_\s-]?(?:access[_\s-]?)?key|aws[_\s-]?secret)"
            rf"{_Q}(?:\s*[:=]\s*|\s+(?:is\s+)?){_Q}"
            r"(?P<awssec__v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
            {"__v": "aws_secret_access_key"},
        ),
        (
            "akid",
            r"(?<![A-Za-z0-9])(?P<akid__v>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Za-z0-9])"
            r"(?:[\s,;:|\"'=]{1,6}(?P<akid__v2>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=]))?",
            {"__v": "aws_access_key_id", "__v2": "aws_secret_access_key"},
        ),
        ("apikey", rf"(?i:api[_-]?key){_SEP}{v('apikey')}", {k: "@api_key" for k in gen}),
        # Not after ':' -- "arn:aws:secretsmanager:...:secret:name" names a secret.
        (
            "secret",
            rf"(?<!:)(?i:{_SECRET_KEYWORDS}){_SEP}{v('secret')}",
            {k: "@secret" for k in gen},
        ),
        ("jwt", r"(?<![A-Za-z0-9_-])" + _SPECIFIC[6][1].pattern, {"": "jwt"}),
        (
            "openai",
            r"(?<![A-Za-z0-9_-])sk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}",
            {"": "@specific"},
        ),
        ("lsmith", r"(?<![A-Za-z0-9_])" + _SPECIFIC[3][1].pattern, {"": "langsmith_api_key"}),
        ("github", r"(?<![A-Za-z0-9_])(?:" + _SPECIFIC[4][1].pattern + ")", {"": "github_token"}),
        ("slack", r"(?<![A-Za-z0-9_-])(?:" + _SPECIFIC[5][1].pattern + ")", {"": "slack_token"}),
        ("stripe", r"(?<![A-Za-z0-9_])" + _SPECIFIC[7][1].pattern, {"": "stripe_api_key"}),
        ("google", r"(?<![A-Za-z0-9_-])" + _SPECIFIC[8][1].pattern + r"(?![A-Za-z0-9_-])", {"": "google_api_key"}),
        (
            "arn",
            r"\barn:aws(?:-cn|-us-gov|-iso[a-z-]*)?:[A-Za-z0-9-]*:[a-z0-9-]*:(?P<arn__v>\d{12}):",
            {"__v": "aws_account_id"},
        ),
        (
            "acct",
            r"(?i:account(?:[\s_-]?(?:id|number|num|no\.?))?)"
            rf"{_Q}\s*(?:[:=#]|\bis\b)?\s*{_Q}"
            r"(?P<acct__v>\d{12}|\d{4}-\d{4}-\d{4})(?![\d-])",
            {"__v": "aws_account_id"},
        ),
        ("acctu", r"(?<=\.amazonaws\.com/)(?P<acctu__v>\d{12})(?=/)", {"__v": "aws_account_id"}),
        ("acctd", r"(?<![\w.])(?P<acctd__v>\d{12})(?=\.dkr\.ecr\.)", {"__v": "aws_account_id"}),
        (
            "email",
            # the local part holds a letter or digit: '%@corp.example' (a SQL LIKE pattern of a
            # domain, a lesson a SQL agent must keep) names no one
            r"(?<![A-Za-z0-9._%+-])(?=[._%+-]*[A-Za-z0-9])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
            r"(?![A-Za-z0-9-])(?!:[A-Za-z0-9_~/])",
            {"": "email"},
        ),
        (
            "ipv6",
            r"(?<![A-Za-z0-9:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
            r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?:%[A-Za-z0-9]+)?(?![A-Za-z0-9:])",
            {"": "@ipv6"},
        ),
        ("ipv4", _IPV4, {"": "@ipv4"}),
        # A bare AWS secret key (no name before it): 40 base64 characters judged by their mix
        # (see _looks_random_key), so git SHAs, hex digests and identifiers survive. Last: at
        # the same start, any named rule (awssec, akid, email...) wins.
        # A diff's "+" at a line start is not part of the key.
        (
            "awsbare",
            r"(?:(?<![A-Za-z0-9/+=])|(?<=^\+)|(?<=\n\+))[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
            {"": "@awsbare"},
        ),
    ]


class Redactor:
    """Replaces secrets and PII in strings and JSON-like objects.

    Build one per process (compiling is the expensive part) and call
    :meth:`redact` on every payload before it is stored or sent.
    """

    def __init__(
        self,
        extra_patterns: Sequence[str] = (),
        *,
        placeholder_fmt: str = DEFAULT_PLACEHOLDER,
    ) -> None:
        try:
            probe = placeholder_fmt.format(kind="x")
        except (KeyError, IndexError, ValueError) as e:
            raise ConfigError(
                f"redaction placeholder {placeholder_fmt!r} is invalid: {e}"
            ) from None
        if "{kind}" not in placeholder_fmt or probe == "x":
            raise ConfigError(
                f"redaction placeholder {placeholder_fmt!r} must contain {{kind}}"
                " and some text around it"
            )
        self.placeholder_fmt = placeholder_fmt
        self._kinds, self._ph_re = _compile(placeholder_fmt)
        self._extra = tuple(_compile_extra(p) for p in extra_patterns)
        # Traces repeat the same strings (system prompt, tool schemas, messages
        # re-sent every turn): a bounded memo makes a run's redaction ~10x cheaper.
        self._memo: dict[str, str] = {}

    # -- text ---------------------------------------------------------------
    def placeholder(self, kind: str) -> str:
        return self.placeholder_fmt.format(kind=kind)

    def redact_text(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder.

        A finding can hide another: rules start at word starts and some look
        one character past their end, *in the text they scan*, so
        ``AKIA…-----BEGIN…`` or ``a@b.co:AKIA…`` reveal their second secret only
        once the first is a placeholder. Passes therefore repeat until nothing
        changes; a string with no finding costs one pass, one with findings
        two. Passes end: each change removes text outside placeholders.
        """
        if len(text) < _MIN_SECRET_CHARS and not self._extra:
            return text
        memo = self._memo.get(text)
        if memo is not None:
            return memo
        out = self._redact_uncached(text)
        if len(text) <= _MEMO_MAX_CHARS:
            if len(self._memo) >= _MEMO_MAX_ENTRIES:
                self._memo.clear()
            self._memo[text] = out
        return out

    def _redact_uncached(self, text: str) -> str:
        out = text
        for _ in range(_MAX_PASSES):
            new = self._scan(out)
            for pat in self._extra:
                new = pat.sub(self._replace_custom, new)
            if new is out or new == out:
                break
            out = new
        return out

    def _scan(self, text: str) -> str:
        """One pass of the built-in rules (``text`` itself when nothing changed)."""
        names = _active_rules(text)
        if not names:
            return text
        parts: list[str] = []
        last = 0
        for m in _combined(self.placeholder_fmt, names).finditer(text):
            rep = self._replace(m)
            if rep == m.group(0):
                continue
            parts.append(text[last : m.start()])
            parts.append(rep)
            last = m.end()
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)

    def _replace(self, m: re.Match[str]) -> str:
        rule = m.lastgroup
        assert rule is not None
        kinds = self._kinds[rule]
        whole = m.group(0)
        if "" in kinds:
            kind = self._kind(kinds[""], whole, m)
            if kind is None:
                return self._keep(rule, whole)
            return self.placeholder(kind)
        base = m.start()
        spans: list[tuple[int, int, str]] = []
        for suffix, spec in kinds.items():
            g = rule + suffix
            if m.group(g) is None:
                continue
            kind = self._kind(spec, m.group(g), m)
            if kind is not None:
                spans.append((m.start(g) - base, m.end(g) - base, kind))
        spans.sort()
        parts: list[str] = []
        at = 0
        for s, e, kind in spans:
            parts.append(whole[at:s])
            parts.append(self.placeholder(kind))
            at = e
        parts.append(whole[at:])
        return "".join(parts)

    def _kind(self, spec: str, found: str, m: re.Match[str]) -> str | None:
        if not spec.startswith("@"):
            return spec
        name = spec[1:]
        if name in ("api_key", "secret"):
            return _specific_kind(found) or name
        if name == "specific":
            return _specific_kind(found) or "api_key"
        if name == "authz":
            scheme = (m.group("authz__scheme") or "bearer").strip().lower()
            return {"bearer": "bearer_token", "basic": "basic_auth"}.get(scheme, "auth_token")
        if name == "ipv4":
            ip4 = ipaddress.IPv4Address(found)
            return None if ip4.is_loopback or ip4.is_unspecified else "ipv4"
        if name == "ipv6":
            return _ipv6_kind(found)
        if name == "awsbare":
            return "aws_secret_access_key" if _looks_random_key(found) else None
        raise AssertionError(spec)

    def _keep(self, rule: str, whole: str) -> str:
        """A candidate that turned out not to be secret; an IPv4 inside it still is."""
        if rule == "ipv6":
            return _IPV4_RE.sub(lambda m: self._replace_ipv4(m.group(0)), whole)
        return whole

    def _replace_ipv4(self, found: str) -> str:
        ip4 = ipaddress.IPv4Address(found)
        return found if ip4.is_loopback or ip4.is_unspecified else self.placeholder("ipv4")

    def _replace_custom(self, m: re.Match[str]) -> str:
        if "secret" in m.re.groupindex:
            if m.group("secret") is None:
                return m.group(0)
            s, e = m.span("secret")
            base = m.start()
            whole = m.group(0)
            return whole[: s - base] + self.placeholder("custom") + whole[e - base :]
        if self._ph_re.fullmatch(m.group(0)):
            return m.group(0)
        return self.placeholder("custom")

    # -- objects ------------------------------------------------------------
    def redact(self, obj: Any) -> Any:
        """A redacted copy of a JSON-like object; the input is never modified.

        Dicts (any Mapping, returned as dict), lists and tuples are walked;
        strings are redacted; other leaves (numbers, datetimes, objects) are
        returned as they are.
        """
        return self._walk(obj, set())

    def redact_deep(self, obj: Any) -> Any:
        """Like :meth:`redact`, also through pydantic models and dataclasses (as rebuilt copies).

        For state that holds objects rather than JSON (LangGraph checkpoints hold
        LangChain messages; caches hold them before they are dumped). An object
        with no finding is returned as it is; other objects are left alone.
        """
        return self._walk(obj, set(), deep=True)

    def _object(self, obj: Any, active: set[int]) -> Any:
        """A copy of a pydantic model or dataclass with its fields redacted (``obj`` if none changed)."""
        fields: dict[str, Any]
        is_model = isinstance(getattr(type(obj), "model_fields", None), dict) and hasattr(obj, "model_copy")
        if is_model:  # a pydantic model (duck-typed: importing pydantic here would slow the CLI's start)
            fields = {name: getattr(obj, name, None) for name in type(obj).model_fields}
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
        else:
            return obj
        if id(obj) in active:
            return obj
        active.add(id(obj))
        try:
            changed = {}
            for name, value in fields.items():
                new = self._walk_item(name, value, active, deep=True)
                if new is not value and new != value:
                    changed[name] = new
        finally:
            active.discard(id(obj))
        if not changed:
            return obj
        if is_model:
            return obj.model_copy(update=changed)
        try:
            return dataclasses.replace(obj, **changed)
        except (TypeError, ValueError):  # a dataclass that cannot be rebuilt from its fields
            return obj

    def _walk(self, obj: Any, active: set[int], deep: bool = False) -> Any:
        # Exact-type checks first: an ``isinstance(x, Mapping)`` ABC check on every
        # leaf was a large share of a trace's redaction time.
        t = type(obj)
        if t is str:
            return self.redact_text(obj)
        if t in _PLAIN_LEAVES:
            return obj
        if t is dict:
            is_map = True
        elif t is list or t is tuple:
            is_map = False
        elif isinstance(obj, str):
            return self.redact_text(obj)
        elif isinstance(obj, Mapping):
            is_map = True
        elif isinstance(obj, (list, tuple)):
            is_map = False
        else:
            return self._object(obj, active) if deep else obj
        if id(obj) in active:
            return obj
        active.add(id(obj))
        try:
            if is_map:
                return {k: self._walk_item(k, v, active, deep) for k, v in obj.items()}
            items = [self._walk(x, active, deep) for x in obj]
        finally:
            active.discard(id(obj))
        if isinstance(obj, list):
            return items
        if hasattr(obj, "_fields"):  # namedtuple
            return type(obj)(*items)
        return tuple(items)

    def _walk_item(self, key: Any, value: Any, active: set[int], deep: bool = False) -> Any:
        if isinstance(key, str):
            kind = _key_kind(key, value)
            # Deep (typed objects): a field keeps its type, so only text and containers are hidden.
            if kind is not None and (not deep or isinstance(value, (str, Mapping, list, tuple))):
                return self._hide(value, kind, active)
        return self._walk(value, active, deep)

    def _hide(self, value: Any, kind: str, active: set[int]) -> Any:
        """Replace every leaf under a secret key, keeping the shape (``Credentials: {...}``)."""
        if isinstance(value, str):
            if self._ph_re.fullmatch(value):
                return value
            return self.placeholder(_specific_kind(value.strip()) or kind)
        if isinstance(value, (Mapping, list, tuple)):
            if id(value) in active:
                return self.placeholder(kind)
            active.add(id(value))
            try:
                if isinstance(value, Mapping):
                    # An inner key may say more: {"Credentials": {"SecretAccessKey": ...}}.
                    return {
                        k: self._hide(v, (isinstance(k, str) and _key_kind(k, v)) or kind, active)
                        for k, v in value.items()
                    }
                items = [self._hide(v, kind, active) for v in value]
                return items if isinstance(value, list) else tuple(items)
            finally:
                active.discard(id(value))
        if value is None or isinstance(value, bool):
            return value
        return self.placeholder(kind)


# Substrings one of which every finding of a rule contains. A string is scanned only
# with the rules whose trigger it holds, which makes the usual scan a handful of rules.
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "pem": ("PRIVATE KEY",),
    "urlpw": ("://",),
    "authz": ("authorization",),
    "bearer": ("bearer",),
    "awssec": ("secret",),
    "akid": ("AKIA", "ASIA"),
    "apikey": ("api",),
    "secret": ("pass", "secret", "private", "access", "token", "credent", "signature", "sessionid"),
    "jwt": ("eyJ",),
    "openai": ("sk-",),
    "lsmith": ("lsv2_", "ls__"),
    "github": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "slack": ("xox", "xapp-"),
    "stripe": ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
    "google": ("AIza",),
    "arn": ("arn:",),
    "acct": ("account",),
    "acctu": ("amazonaws.com/",),
    "acctd": (".dkr.ecr.",),
    "email": ("@",),
    "ipv6": (":",),
    "ipv4": (".",),
    "awsbare": ("",),  # no literal trigger: any string of 40+ characters is scanned
}
# Rules matched case-insensitively: their triggers are looked up in the lower-cased text.
_CASELESS = frozenset({"authz", "bearer", "awssec", "apikey", "secret", "acct"})


# Leaf types returned as they are, recognised without an ABC check.
_PLAIN_LEAVES = frozenset({int, float, bool, type(None)})

#: Shorter strings cannot hold a built-in finding (the shortest is an IPv6 like a::1).
_MIN_SECRET_CHARS = 4
_MEMO_MAX_CHARS = 16_384
_MEMO_MAX_ENTRIES = 4096


def _active_rules(text: str) -> tuple[str, ...]:
    lower = text.lower()
    return tuple(
        name
        for name, triggers in _TRIGGERS.items()
        if any(t in (lower if name in _CASELESS else text) for t in triggers)
    )


@functools.lru_cache(maxsize=8)
def _compile(fmt: str) -> tuple[dict[str, dict[str, str]], re.Pattern[str]]:
    """Per placeholder format: rule name -> value-group kinds, and the placeholder regex."""
    kinds = {name: dict(groups) for name, _, groups in _rules(_placeholder_regex(fmt))}
    assert kinds.keys() == _TRIGGERS.keys()
    return kinds, re.compile(_placeholder_regex(fmt))


def _placeholder_regex(fmt: str) -> str:
    head, _, tail = fmt.partition("{kind}")
    return re.escape(head) + r"[a-z0-9_]+" + re.escape(tail)


@functools.lru_cache(maxsize=512)
def _combined(fmt: str, names: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation of the named rules, in their priority order."""
    wanted = set(names)
    parts = [f"(?P<{n}>{pat})" for n, pat, _ in _rules(_placeholder_regex(fmt)) if n in wanted]
    # Every finding starts at a word start or a camelCase hump ("dbPassword"): checking
    # that once per position, before any rule, is what keeps scanning fast.
    gate = r"(?:(?<![A-Za-z0-9])(?=[-\w:.%+])|(?<=[a-z])(?=[A-Z]))"
    return re.compile(f"{gate}(?:{'|'.join(parts)})")


def _compile_extra(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"redaction pattern {pattern!r} is not a valid regex: {e}") from None
    if compiled.fullmatch(""):
        raise ConfigError(f"redaction pattern {pattern!r} matches the empty string")
    return compiled


def _looks_random_key(found: str) -> bool:
    """A 40-character base64 run that is an AWS secret key rather than a hash, path or name.

    Git SHAs and hex digests have no upper case (or no lower case), uuids have dashes;
    a random 40-character base64 key has ~16 upper, ~16 lower and ~6 digits (none: 0.1 %
    of keys; AWS's documented example has one). Paths of words have no digit.
    """
    upper = sum(c.isupper() for c in found)
    lower = sum(c.islower() for c in found)
    if upper < 3 or lower < 3 or not any(c.isdigit() for c in found):
        return False
    # "src/app/Handler2024/Config/MainModule/v1": a lower-case path segment; random keys
    # almost never hold one between slashes.
    return not ("/" in found and re.search(r"(?:^|/)[a-z]{3,}/", found) is not None)


def _ipv6_kind(found: str) -> str | None:
    addr = found.split("%", 1)[0]
    groups = [g for g in addr.split(":") if g]
    weight = sum(2 if "." in g else 1 for g in groups)
    if weight < 2:  # "::2" in a slice like x[::2], "a:" in prose
        return None
    try:
        ip6 = ipaddress.IPv6Address(addr)
    except ValueError:
        return None
    if ip6.is_loopback or ip6.is_unspecified:
        return None
    mapped = ip6.ipv4_mapped
    if mapped is not None and (mapped.is_loopback or mapped.is_unspecified):
        return None
    return "ipv6"


# -- dict keys ------------------------------------------------------------------

_KEY_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_STRONG_KEY_PARTS = (
    "password", "passwd", "passphrase", "secret", "apikey", "credential",
    "privatekey", "authorization",
)  # fmt: skip
_KEY_WORDS = frozenset({"token", "auth", "cookie", "signature", "bearer"})
_KEY_BIGRAMS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("session", "key")}
)
# A key about a secret rather than holding one: "token_usage", "max_tokens", "auth_type".
_NOT_SECRET_ANY = frozenset({
    "count", "counts", "usage", "limit", "limits", "max", "min", "total", "num", "budget",
    "estimate", "estimated", "type", "kind",
})  # fmt: skip
# ... or one naming it by its last word: "secret_name", "SecretId", "password_last_used".
_NOT_SECRET_LAST = frozenset({
    "id", "ids", "name", "names", "arn", "url", "uri", "path", "file", "endpoint", "length",
    "len", "expiry", "expires", "expiration", "ttl", "enabled", "required", "provider",
    "policy", "version", "rotation", "method", "source", "present", "set", "configured",
    "hint", "label", "description", "used", "changed", "date", "time", "at", "status",
})  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _key_words(key: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _KEY_WORD_RE.findall(key))


@functools.lru_cache(maxsize=4096)
def _key_profile(key: str) -> tuple[bool, bool, bool, bool] | None:
    """What the key alone says: (account-like, secret, secret-access-key words, api key); None: never a finding.

    Cached: traces repeat the same few keys thousands of times per run.
    """
    words = _key_words(key)
    if not words:
        return None
    account = "account" in words or ("owner" in words and "id" in words)
    flat = "".join(words)
    pairs = set(itertools.pairwise(words))
    secret = not (words[-1] in _NOT_SECRET_LAST or _NOT_SECRET_ANY.intersection(words)) and bool(
        any(p in flat for p in _STRONG_KEY_PARTS)
        or _KEY_WORDS.intersection(words)
        or _KEY_BIGRAMS.intersection(pairs)
    )
    if not account and not secret:
        return None
    sak = {"secret", "access", "key"} <= set(words)
    api = ("api", "key") in pairs or "apikey" in flat
    return account, secret, sak, api


def _key_kind(key: str, value: Any) -> str | None:
    """The kind to replace a dict value with, judged by its key; None to walk it normally."""
    profile = _key_profile(key)
    if profile is None:
        return None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, list, tuple, dict)) and not value:
        return None
    account, secret, sak, api = profile
    if account and _is_account_id(value):
        return "aws_account_id"
    if not secret:
        return None
    if isinstance(value, str):
        specific = _specific_kind(value.strip())
        if specific:
            return specific
        if sak and re.fullmatch(r"[A-Za-z0-9/+]{40}", value):
            return "aws_secret_access_key"
    if api:
        return "api_key"
    return "secret"


def _is_account_id(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return 10**11 <= value < 10**12
    return isinstance(value, str) and re.fullmatch(r"\d{12}", value.strip()) is not None


# -- settings ---------------------------------------------------------------------


def make_redactor(
    settings: Settings | None = None, *, extra_patterns: Sequence[str] = ()
) -> Redactor:
    """The redactor for a project: built-in rules plus configured patterns.

    Reads ``settings.tracing.redact_patterns`` when that field exists (it is not
    in the settings model yet), plus ``extra_patterns``.
    """
    configured: Sequence[str] = ()
    if settings is not None:
        configured = getattr(settings.tracing, "redact_patterns", None) or ()
    return _cached_redactor(tuple(configured) + tuple(extra_patterns))


@functools.lru_cache(maxsize=16)
def _cached_redactor(patterns: tuple[str, ...]) -> Redactor:
    return Redactor(patterns)


# -- logs -------------------------------------------------------------------------


def install_log_redaction(redactor: Redactor | None = None) -> None:
    """Every log record made from now on carries a redacted message (idempotent).

    Warnings quote what went wrong -- a model reply that did not parse, a tool
    error -- and so whatever secret that text held. Wrapping the record factory
    covers every logger and handler (selfheal's, LangChain's, the SDKs'), also
    the last-resort handler a CLI without logging config prints through. The
    message is formatted first, so arguments are redacted too.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "selfheal_redacting", False):
        return
    red = redactor if redactor is not None else make_redactor()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's to report
            return record
        record.msg, record.args = red.redact_text(message), None
        return record

    factory.selfheal_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
