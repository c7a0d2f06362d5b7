"""The gate between learned text and the agent's prompt: everything a curator writes is untrusted.

Curated entries are distilled from traces, and traces hold whatever tools,
logs and users put there: a log line saying "ignore previous instructions", a
key in an env dump, a URL to fetch. Whatever passes here is shown to the agent
on every later run, so a single poisoned lesson is a persistent prompt
injection. :class:`ContentGuard` therefore *cleans* what is safe to clean
(secrets and PII are redacted with the tracing :class:`Redactor`, whitespace
trimmed) and *rejects* everything else it finds, naming the category:

``length``       shorter than ``min_chars`` or longer than ``max_chars``;
``injection``    instructions to ignore/override/forget prior or system
                 instructions, "new instructions:", "you are now ...";
``jailbreak``    role-play and jailbreak markers (DAN, developer mode, "pretend
                 you are", "act as an unrestricted ...");
``exfiltration`` sending/posting/uploading data, keys, credentials or the
                 environment somewhere, or reading credential stores
                 (``~/.aws/credentials``, ``os.environ``, ``.env``);
``tool``         calling a tool that is not in ``allowed_tools`` ("call
                 delete_function"), or shell/code execution ("run shell",
                 "execute bash", ``subprocess``, ``os.system``, ``rm -rf``);
``url``          any ``http(s)://``/``www.`` address, or an instruction to
                 fetch/download/visit/curl a bare domain;
``hidden``       zero-width, bidi-override, tag or control characters, words
                 mixing Latin with Cyrillic/Greek letters (homoglyphs),
                 HTML/markdown comments, ``<script>``, base64 blobs over 40
                 characters;
``template``     chat-template tokens (``<|im_start|>``, ``</s>``,
                 ``[INST]``, ``<<SYS>>``) and role headers (``SYSTEM:``,
                 ``### Assistant``) that could end the prompt's turn.

Rejection rather than stripping for the last five: a lesson that carries an
instruction is not a lesson with a bad sentence removed, it is an attack, and
half of it may still be one. Plain mentions stay legal -- "do not ignore
throttles", "the https scheme", "use the get_function_configuration tool",
the ``lambda.amazonaws.com`` principal -- the patterns need the *instruction*
shape, not the word. Dedupe against existing entries is :func:`normalize` +
:meth:`ContentGuard.duplicate_of`; the ops module applies it to whole entries.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from selfheal.redact import Redactor, make_redactor

__all__ = ["CODE_FIELDS", "ContentGuard", "GuardVerdict", "normalize"]

#: Entry fields holding code: checked for dangerous calls, not for prose tool mentions.
CODE_FIELDS = frozenset({"snippet"})

_I = re.IGNORECASE
_PLACEHOLDER = re.compile(r"\[REDACTED:([a-z0-9_]+)\]")

# -- injection / jailbreak ----------------------------------------------------------
_PRIOR = r"(?:all\s+|any\s+|the\s+|your\s+|of\s+|these\s+|those\s+)*(?:previous|prior|above|earlier|preceding|former|original|system|existing|initial|safety|developer)"
_INSTR = r"(?:instructions?|rules?|prompts?|messages?|context|directions?|guidelines?|guardrails?|constraints?|policies|policy|orders)"
_INJECTION = [
    re.compile(rf"\b(?:ignore|disregard|forget|override|overrule|bypass|skip|drop|discard)\b[\s\w,'-]{{0,30}}?\b{_PRIOR}\b[\s\w-]{{0,20}}?\b{_INSTR}\b", _I),
    re.compile(rf"\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|above|before)", _I),
    re.compile(rf"\b(?:ignore|disregard|override)\s+(?:the\s+|your\s+)?system\s+(?:prompt|message)", _I),
    re.compile(r"\bnew\s+(?:system\s+)?instructions?\s*[:\-]", _I),
    re.compile(r"\b(?:from\s+now\s+on|henceforth),?\s+(?:you|the\s+agent|always|never|ignore|respond)", _I),
    re.compile(r"\byou\s+are\s+(?:now|no\s+longer)\b", _I),
    re.compile(r"\b(?:reveal|print|repeat|output|leak|show)\s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt|hidden\s+instructions|initial\s+prompt)", _I),
    re.compile(r"\b(?:do\s+not|don't|never)\s+(?:tell|inform|alert|mention\s+(?:this\s+)?to)\s+the\s+(?:user|operator|reviewer|human)", _I),
]
_JAILBREAK = [
    re.compile(r"\bDAN\b|\bdo\s+anything\s+now\b"),
    re.compile(r"\b(?:developer|god|jailbreak|unrestricted|unfiltered|sudo)\s+mode\b", _I),
    re.compile(r"\bjail\s*-?\s*break", _I),
    re.compile(r"\bpretend\s+(?:to\s+be|that\s+you|you\s+are|you're)\b", _I),
    re.compile(r"\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were)\s+)?(?:an?\s+)?(?:unrestricted|unfiltered|evil|rogue|uncensored|different|new)\b", _I),
    re.compile(r"\brole-?\s*play\s+as\b", _I),
    re.compile(r"\bwithout\s+(?:any\s+)?(?:restrictions|filters|safety|limits)\b", _I),
]

# -- exfiltration -------------------------------------------------------------------
_EXFIL_VERB = r"(?:send|sends|post|posts|upload|uploads|e-?mail|exfiltrate|forward|transmit|leak|beacon|pipe|dump|share|copy|paste|publish|report)"
_SENSITIVE = (
    r"(?:data|dataset|credentials?|creds|secrets?|keys?|api[\s_-]?keys?|access[\s_-]?keys?|tokens?|passwords?"
    r"|env(?:ironment)?(?:\s+variables?|\s+vars?)?|\.env|os\.environ|config(?:uration)?\s+files?|private|session|cookies?)"
)
_EXFIL = [
    re.compile(rf"\b{_EXFIL_VERB}\b[^.;\n]{{0,60}}?\b{_SENSITIVE}\b[^.;\n]{{0,60}}?\b(?:to|into|at|via|onto)\b", _I),
    re.compile(r"~/\.aws/credentials|\.aws/config\b|/etc/(?:passwd|shadow)|\bid_rsa\b|\.ssh/", _I),
    re.compile(r"\bos\.environ\b|\bprintenv\b|\bgetenv\s*\(|\$\{?(?:AWS|OPENAI|LANGSMITH|GITHUB)_[A-Z_]*", _I),
    re.compile(r"\b(?:read|cat|open|print|dump|show)\s+(?:the\s+)?(?:contents\s+of\s+)?(?:\.env|env\s+file|environment\s+variables|credentials?\s+file)", _I),
    re.compile(r"\b(?:webhook|pastebin|requestbin|ngrok|burpcollaborator|interact\.sh)\b", _I),
]

# -- tools and execution ------------------------------------------------------------
_SHELL = [
    re.compile(r"\b(?:run|execute|exec|open|spawn|start|launch|use)\s+(?:a\s+|the\s+|an?\s+)?(?:shell|bash|terminal|powershell|cmd\.exe|command[\s-]line|sh\s+-c|zsh)\b", _I),
    re.compile(r"\bshell\s+commands?\b", _I),
    re.compile(r"\b(?:subprocess|os\.system|os\.popen|pty\.spawn|__import__|importlib)\b"),
    re.compile(r"(?<![\w.])(?:eval|exec|compile)\s*\("),
    re.compile(r"\brm\s+-[a-z]*[rf]|\bchmod\s+[0-7+]|\bsudo\s+\w|\bcurl\s+\S|\bwget\s+\S|\bnc\s+-[a-z]", _I),
    re.compile(r"\bboto3\.client\s*\(\s*['\"](?:iam|sts|secretsmanager|ssm|kms|s3)['\"]", _I),
]
# A snake_case name the text tells the agent to call: after a calling verb, or after
# "use"/"with"/"via" when it is marked as a tool (backticks, "tool", a call's parenthesis).
_NAME = r"`?(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)`?"
_TOOL_CALL = [
    re.compile(rf"\b(?:call|calls|calling|invoke|invokes|invoking|run|running|execute|executing|trigger)\s+(?:the\s+|a\s+)?{_NAME}", _I),
    re.compile(rf"\b(?:use|using|with|via)\s+(?:the\s+|a\s+)?(?:`(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)`|(?P<name2>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?=\s*\(|\s+tool))", _I),
    re.compile(r"(?<![\w.])(?P<name>[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\s*\("),
]
# Destructive or privilege-changing API calls in code snippets.
_CODE_DANGER = re.compile(
    r"\.(?:delete|terminate|destroy|drop|purge)_\w*\s*\(|\.(?:put|attach)_\w*(?:policy|permission)\w*\s*\(|\.create_access_key\s*\(|\.add_permission\s*\("
)

# -- URLs ---------------------------------------------------------------------------
_URL = re.compile(r"\b(?:https?|ftp|file|wss?)://\S+|\bwww\.[a-z0-9-]+\.\S+", _I)
_DOMAIN = r"(?:[a-z0-9-]+\.)+(?:com|net|org|io|ru|cn|xyz|top|info|biz|co|me|dev|app|sh|ly|site|online|tk|cc)\b(?:/\S*)?"
_FETCH = re.compile(
    rf"\b(?:fetch|download|visit|browse|open|load|get|retrieve|navigate\s+to|go\s+to|request|pull|curl|wget|import\s+from)\s+(?:\w+\s+){{0,3}}?{_DOMAIN}",
    _I,
)

# -- hidden content -----------------------------------------------------------------
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_COMMENT = [
    re.compile(r"<!--|-->"),
    re.compile(r"^\s*\[(?://|comment|_)\]:\s*#", re.MULTILINE | _I),
    re.compile(r"<\s*/?\s*(?:script|iframe|style|img|object|embed)\b", _I),
    re.compile(r"\bdata:[a-z]+/[a-z0-9.+-]+;base64,", _I),
]
_WORDS = re.compile(r"[^\W\d_]{2,}")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{41,}={0,2}(?![A-Za-z0-9+/=_-])")

# -- chat templates -----------------------------------------------------------------
_TEMPLATE = [
    re.compile(r"<\|[a-z_]{2,30}\|>", _I),  # <|im_start|>, <|endoftext|>, <|system|>, <|eot_id|>
    re.compile(r"</?s>|<\s*/?\s*(?:start_of_turn|end_of_turn|bos|eos)\s*>", _I),
    re.compile(r"\[/?INST\]|<</?SYS>>"),
    re.compile(r"(?:^|\n)\s*(?:#{1,6}\s*)?(?:SYSTEM|System|ASSISTANT|Assistant|USER|Human|Developer)\s*(?::|\n)"),
    re.compile(r"\bSYSTEM\s*:"),
]


@dataclass
class GuardVerdict:
    """The cleaned text and why it was rejected (empty ``reasons`` with ``ok``) or cleaned."""

    ok: bool
    text: str
    reasons: list[str] = field(default_factory=list)

    @property
    def categories(self) -> list[str]:
        """The rejection/cleaning categories, ``"injection"`` from ``"injection: ..."``."""
        return sorted({r.split(":", 1)[0] for r in self.reasons})


def normalize(text: str) -> str:
    """Text reduced for duplicate detection: NFKC, case-folded, words only."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"[^\W_]+", text))


class ContentGuard:
    """Checks one piece of learned text; build once per curation batch.

    ``allowed_tools`` is the domain's tool list: with it, an instruction to call
    any other snake_case tool is rejected; without it (None) only shell and
    code execution is. ``field`` is the entry field the text is for: code
    fields (``snippet``) may use calls and are checked for dangerous ones only.
    """

    def __init__(
        self,
        *,
        max_chars: int = 600,
        min_chars: int = 8,
        redactor: Redactor | None = None,
        allowed_tools: set[str] | None = None,
    ) -> None:
        self.max_chars = max_chars
        self.min_chars = min_chars
        self.redactor = redactor if redactor is not None else make_redactor()
        self.allowed_tools = set(allowed_tools) if allowed_tools is not None else None

    def check(self, text: str, *, field: str = "") -> GuardVerdict:
        """Clean ``text`` (redact, trim) and say whether it may enter the cheatsheet."""
        reasons: list[str] = []
        if len(text) > 20 * self.max_chars:  # a pasted log, not a lesson: not worth scanning
            return GuardVerdict(False, "", [f"length: {len(text)} characters, over {self.max_chars}"])
        hidden = self._hidden(text)  # before redaction and trimming can hide the evidence
        cleaned = self.redactor.redact_text(text)
        cleaned = cleaned.strip() if field in CODE_FIELDS else "\n".join(
            line.rstrip() for line in cleaned.strip().splitlines()
        )
        found = sorted(set(_PLACEHOLDER.findall(cleaned)) - set(_PLACEHOLDER.findall(text)))
        if len(cleaned) < self.min_chars:
            reasons.append(f"length: {len(cleaned)} characters, under {self.min_chars}")
        if len(cleaned) > self.max_chars:
            reasons.append(f"length: {len(cleaned)} characters, over {self.max_chars}")
        reasons += hidden
        # Fullwidth and other compatibility forms read like ASCII to a model: match on NFKC.
        reasons += self._patterns(unicodedata.normalize("NFKC", cleaned), field)
        if reasons:
            return GuardVerdict(ok=False, text=cleaned, reasons=reasons)
        return GuardVerdict(ok=True, text=cleaned, reasons=[f"redacted: {k}" for k in found])

    def check_all(self, fields: dict[str, str]) -> dict[str, GuardVerdict]:
        return {name: self.check(value, field=name) for name, value in fields.items()}

    @staticmethod
    def duplicate_of(text: str, existing: Iterable[tuple[str, str]]) -> str | None:
        """The id of an existing ``(id, text)`` whose normalized text equals ``text``'s."""
        key = normalize(text)
        for entry_id, other in existing:
            if normalize(other) == key:
                return entry_id
        return None

    # -- rules ------------------------------------------------------------------
    @staticmethod
    def _hidden(text: str) -> list[str]:
        out: list[str] = []
        inv = _INVISIBLE.search(text)
        if inv:
            out.append(f"hidden: invisible character U+{ord(inv.group(0)):04X}")
        if _CONTROL.search(text):
            out.append("hidden: control character")
        mixed = next((w for w in _WORDS.findall(text) if _mixed_script(w)), None)
        if mixed:
            out.append(f"hidden: mixed-script word {mixed!r} (homoglyphs)")
        for pat in _COMMENT:
            m = pat.search(text)
            if m:
                out.append(f"hidden: {m.group(0).strip()!r}")
                break
        return out

    def _patterns(self, text: str, field: str) -> list[str]:
        out: list[str] = []
        code = field in CODE_FIELDS

        def first(category: str, patterns: list[re.Pattern[str]]) -> None:
            for pat in patterns:
                m = pat.search(text)
                if m:
                    out.append(f"{category}: {_snip(m.group(0))!r}")
                    return

        first("template", _TEMPLATE)
        first("injection", _INJECTION)
        first("jailbreak", _JAILBREAK)
        first("exfiltration", _EXFIL)
        first("tool", _SHELL)
        tool = self._unknown_tool(text, code)
        if tool:
            what = "a destructive call" if code else "not an allowed tool"
            out.append(f"tool: {tool!r} is {what}")
        url = _URL.search(text) or _FETCH.search(text)
        if url:
            out.append(f"url: {_snip(url.group(0))!r}")
        blob = next((m for m in _BASE64.finditer(_PLACEHOLDER.sub(" ", text)) if _looks_encoded(m.group(0))), None)
        if blob:
            out.append(f"hidden: encoded blob of {len(blob.group(0))} characters")
        return out

    def _unknown_tool(self, text: str, code: bool) -> str | None:
        if code:  # code calls functions; only destructive API calls are suspect there
            m = _CODE_DANGER.search(text)
            return m.group(0).strip(".( ") if m else None
        if self.allowed_tools is None:
            return None
        for pat in _TOOL_CALL:
            for m in pat.finditer(text):
                name = m.group("name") or m.groupdict().get("name2")
                if name and name not in self.allowed_tools:
                    return name
        return None


def _mixed_script(word: str) -> bool:
    """Latin letters mixed with Cyrillic/Greek ones in one word: a homoglyph disguise."""
    scripts = set()
    for ch in word:
        if ch.isascii():
            scripts.add("latin")
        else:
            name = unicodedata.name(ch, "")
            scripts.add(name.split(" ", 1)[0] if name.startswith(("CYRILLIC", "GREEK", "ARMENIAN")) else "other")
    return "latin" in scripts and bool(scripts & {"CYRILLIC", "GREEK", "ARMENIAN"})


def _looks_encoded(blob: str) -> bool:
    """Mixed case and digits (or padding/slashes): not an identifier, hex hash or word run."""
    if "_" in blob and not any(c in blob for c in "+/="):
        return False  # snake_case identifiers
    kinds = sum((any(c.islower() for c in blob), any(c.isupper() for c in blob), any(c.isdigit() for c in blob)))
    return kinds >= 3 or (kinds >= 2 and any(c in blob for c in "+/="))


def _snip(s: str, n: int = 60) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"
