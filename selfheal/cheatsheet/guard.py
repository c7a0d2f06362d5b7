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

__all__ = ["CODE_FIELDS", "INVISIBLE", "ContentGuard", "GuardVerdict", "fold", "normalize"]

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
    # services whose only use in a lesson is receiving data; a webhook is an ordinary thing to operate (a
    # function named webhook-relay), so it needs the sending shape
    re.compile(r"\b(?:webhook\.site|pastebin|requestbin|ngrok|burpcollaborator|interact\.sh|pipedream\.net)\b", _I),
    re.compile(rf"\b{_EXFIL_VERB}\b[^.;\n]{{0,60}}?\b(?:to|into|onto|via)\s+(?:an?\s+|the\s+|my\s+|our\s+|this\s+)?"
               r"(?:external\s+|remote\s+|outside\s+)?webhooks?\b", _I),
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

# -- paraphrases, matched on the folded view (see :func:`fold`) ---------------------
# The folded view is NFKC, without invisible characters, homoglyphs mapped to
# Latin, letter-spaced words joined, camelCase split, ``_-.:`` between words
# made spaces and case-folded: "DeleteFunction", "delete_function",
# "lambda:DeleteFunction" and "ｄｅｌｅｔｅ＿ｆｕｎｃｔｉｏｎ" all read "delete function".
_OBJ = (
    r"(?:instructions?|rules?|guidance|guidelines?|prompt|directions?|directives?|polic(?:y|ies)|guardrails?"
    r"|safeguards?|constraints?|safety\s+checks?|orders|what\s+you\s+(?:were|have\s+been)\s+told"
    r"|(?:everything|all)\s+(?:above|before)|your\s+training)"
)
_FOLDED_INJECTION = [
    re.compile(
        r"\b(?:ignore|disregard|forget|override|overrule|bypass|discard|set\s+aside|pay\s+no\s+attention\s+to"
        r"|stop\s+following|do\s+not\s+follow|don'?t\s+follow|no\s+longer\s+follow|reset|abandon|throw\s+out)\b"
        rf"[^.;:!?\n]{{0,40}}?\b{_OBJ}"
    ),
    re.compile(
        r"\b(?:previous|prior|above|earlier|system|original|old|operator'?s?|developer'?s?)\s+(?:instructions?|rules?|prompt"
        r"|guidelines?|guidance)\s+(?:no\s+longer\s+appl(?:y|ies)|(?:is|are|was|were)\s+(?:void|outdated|obsolete"
        r"|cancelled|canceled|wrong|invalid|fake|a\s+test|revoked))"
    ),
    re.compile(r"\b(?:the\s+)?ones\s+above\s+(?:were|are)\s+(?:a\s+test|fake|wrong|outdated|void)"),
    re.compile(
        r"\b(?:higher|highest|top|more|greater|overriding|absolute)\s+priority\s+(?:than|over)\s+(?:the\s+|any\s+|all\s+|every\s+)?"
        r"(?:other\s+)?(?:system|previous|prior|operator'?s?|developer'?s?|original)?\s*(?:prompt|instructions?|rules?|messages?"
        r"|guidance|guidelines?)"
    ),
    re.compile(rf"\b(?:takes?|has|have|given?)\s+precedence\s+over\b[^.;\n]{{0,30}}\b{_OBJ}"),
    re.compile(r"\bsupersed(?:e|es|ing)\s+(?:all|any|the|every|previous|prior|earlier|other|your)\b"),
    re.compile(rf"\boverrides?\s+(?:all|any|every|the|your)\b[^.;\n]{{0,30}}\b{_OBJ}"),
    re.compile(r"\byour\s+(?:real|true|actual|new|updated)\s+(?:instructions?|rules?|orders|prompt|task)\b"),
    re.compile(r"\b(?:real|true|actual|hidden|secret)\s+instructions?\s+(?:are|is|follow)\b"),
    re.compile(r"\bnew\s+(?:system\s+)?(?:rules?|polic(?:y|ies)|directives?|instructions?)\s*(?::|-|follow|below)"),
    re.compile(
        r"\b(?:obey|comply\s+with|follow|execute|carry\s+out)\b[^.;\n]{0,30}\b(?:log\s+(?:lines?|messages?)"
        r"|tool\s+output|instructions?\s+(?:in|from|that\s+appear\s+in)\s+(?:the\s+)?(?:logs?|tool|output|data|results?))"
    ),
    re.compile(r"\bdo\s+(?:exactly\s+)?(?:whatever|what)\s+the\s+(?:user|log|tool|message)\s+(?:asks|says|tells)"),
    re.compile(r"\bas\s+if\s+(?:it|they|this)\s+(?:were|was|is)\s+(?:the\s+)?(?:system|operator|developer|admin)"),
    re.compile(r"\b(?:from\s+now\s+on|henceforth|going\s+forward)\b"),
    re.compile(r"\b(?:keep|hide)\s+(?:this|it|that)\s+(?:secret\s+|hidden\s+)?from\s+the\s+(?:user|operator|reviewer|human)"),
    re.compile(r"\bwithout\s+(?:telling|informing|asking|notifying)\s+the\s+(?:user|operator|reviewer|human)"),
    re.compile(
        r"\b(?:run|execute|exec|follow|apply)\s+(?:the\s+)?(?:commands?|steps?|script|code|instructions?)\s+"
        r"(?:in|from|found\s+in|given\s+in)\s+(?:the\s+|this\s+)?(?:error|log|output|message|response|tool|page|url)"
    ),
]
# Claims that the rules are void, outranked or waived; a negation before them makes a lesson ("never skip checks").
_FOLDED_WAIVER = [
    re.compile(r"\b(?:told|rules?|instructions?|guidance|guidelines?|prompt|message|above)\b[^.;\n]{0,30}\b(?:is|are)\s+"
               r"(?:now\s+)?(?:void|cancel+ed|revoked|invalid|obsolete|suspended|lifted|null)"),
    re.compile(r"\bconsider\s+(?:the\s+|all\s+|your\s+)?(?:rules?|instructions?|guidance|guidelines?|prompt)\b[^.;\n]{0,20}"
               r"\b(?:cancel+ed|void|revoked|lifted|obsolete|suspended)"),
    re.compile(r"\b(?:outranks?|trumps?|supersedes?|beats)\s+(?:the\s+|any\s+|all\s+|your\s+)?(?:system|operator|developer"
               r"|previous|prior|other|original)"),
    re.compile(r"\b(?:authori[sz]ed|allowed|permitted|cleared)\s+(?:you\s+)?to\s+(?:skip|bypass|ignore|disable)|\bpre\s?approved\b"),
    re.compile(r"\bnothing\s+in\s+(?:the\s+|your\s+)?(?:system|previous|above|prior)\b[^.;\n]{0,20}\bappl(?:y|ies)"
               r"|\b(?:system\s+(?:prompt|message)|instructions)\s+(?:does|do)\s+not\s+apply"),
    re.compile(r"\bjust\s+(?:report|say|claim|answer)\s+(?:success|that\s+it\s+(?:worked|succeeded|is\s+fixed))"),
    re.compile(r"\b(?:skip|bypass|disable)\s+(?:all\s+|any\s+|the\s+)?(?:verification|checks|validation|approval|review)\b"),
    re.compile(r"\binstructions?\b[^.;\n]{0,30}\b(?:tool\s+(?:results?|output)|logs?|data)\b[^.;\n]{0,20}"
               r"\b(?:must|should|shall)\s+be\s+(?:executed|followed|obeyed|run)"),
    re.compile(r"\bopen\s+(?:it|the\s+\w+)?\s*to\s+(?:everyone|all\s+principals|the\s+public|anyone)\b"),
]
# Other languages: "ignore the previous instructions", "higher priority than the system prompt", on the plain view.
_FOREIGN_INJECTION = [
    re.compile(r"\b(?:ignorier\w*|vergiss|vergessen\s+sie|missacht\w*|überschreib\w*)\b[^.\n]{0,40}"
               r"(?:anweisung\w*|regeln|vorgaben|instruktion\w*|systemprompt|anordnung\w*)"),
    re.compile(r"höhere\s+priorität\s+als|vorrang\s+vor\s+(?:dem|den|der|allen)"),
    re.compile(r"\b(?:ignore[zs]?|oublie[zs]?|néglige[zs]?|ne\s+tiens?\s+pas\s+compte)\b[^.\n]{0,40}"
               r"\b(?:instructions?|consignes?|règles?|directives?|prompt)"),
    re.compile(r"\bprioritaire\s+sur|\bpriorité\s+sur\s+(?:le|la|les)"),
    re.compile(r"\b(?:ignora\w*|olvida\w*|omite|descarta|dimentica\w*|esqueça|esqueca|negeer|vergeet)\b[^.\n]{0,40}"
               r"\b(?:instrucciones|reglas|indicaciones|directrices|istruzioni|regole|instruções|instrucoes|regras"
               r"|instructies|regels|aanwijzingen)"),
    re.compile(r"\b(?:prioridad|priorità|prioridade)\s+(?:sobre|su|rispetto)"),
    re.compile(r"(?:игнорир\w*|забудь\w*|не\s+обращай)[^.\n]{0,40}(?:инструкци\w*|правил\w*|указани\w*)"),
    re.compile(r"(?:zignoruj|ignoruj|zapomnij)\w*[^.\n]{0,40}(?:instrukcj\w*|polece\w*|zasad\w*)"),
    re.compile(r"(?:talimat\w*|kural\w*)[^.\n]{0,40}(?:yok\s+say|görmezden\s+gel|unut)"),
    re.compile(r"(?:忽略|无视|忽视|忘记|不要理会|無視)[^。\n]{0,12}(?:指令|指示|说明|規則|规则|提示|命令)"),
    re.compile(r"(?:指示|命令|ルール|指令|规则)[^。\n]{0,12}(?:無視|忘れ|忽略)"),
    re.compile(r"(?:지시|명령|규칙|지침)[^.\n]{0,12}(?:무시|잊어)"),
]
# Destructive actions: a calling verb before a delete/drop/... name, in any spelling.
_DESTROY = r"(?:delete|drop|destroy|terminate|purge|truncate|wipe|erase|deregister)"
_CALL_VERB = (
    r"(?:call|calls|calling|invoke|invokes|invoking|run|runs|running|execute|executes|executing|exec|trigger|triggers"
    r"|use|using|issue|perform|fire|send|rufe)"
)
_FOLDED_TOOL = [
    re.compile(
        rf"\b{_CALL_VERB}\s+(?:the\s+|a\s+|an\s+)?`?(?:aws\s+)?(?:(?:lambda|iam|ec2|s3|s3api|rds|dynamodb|sqs|sns)\s+)?"
        rf"{_DESTROY}\s?[a-z]*"
    ),
    re.compile(
        rf"\b{_DESTROY}\s+(?:function|alias|table|database|bucket|stack|instance|version|role|user|everything|all)\b"
        rf"(?:(?!\b(?:never|not|don'?t|avoid)\b)[^.;\n]){{0,40}}\b(?:call|run|invoke|execute|use|trigger)\s+it\b"
    ),
    re.compile(
        rf"\b{_CALL_VERB}\b[^.;\n]{{0,30}}?\b(?:put|attach|add|create)\s+(?:[a-z]+\s+){{0,2}}(?:policy|permission|access\s+key)"
    ),
    re.compile(r"\badministratoraccess\b|\"action\"\s*:\s*\"\*\""),
]
_FOREIGN_TOOL = [
    re.compile(r"\b(?:lösche|löschen\s+sie|entferne)\b[^.\n]{0,30}(?:funktion\w*|tabelle\w*|alias)"),
    re.compile(r"\b(?:supprime[zs]?|efface[zs]?)\b[^.\n]{0,30}(?:fonction\w*|table\w*|alias)"),
    re.compile(r"\b(?:elimina|borra|cancella|apague|apaga|exclua|verwijder\w*)\b[^.\n]{0,30}"
               r"(?:funci\w+|funzion\w+|função|funcao|functie\w*|tabla\w*|tabela\w*|tabel\w*)"),
    re.compile(r"удал\w*[^.\n]{0,30}(?:функци\w*|таблиц\w*)|\busuń\s+funkcj\w*|fonksiyonu\s+sil"),
    re.compile(r"删除(?:所有)?(?:的)?(?:函数|表|数据)|(?:関数|テーブル)を削除|함수를\s*삭제"),
]
# SQL that changes data, in any field (the analyst agent only reads): on the plain view.
_SQL_WRITE = re.compile(
    r"\b(?:drop|truncate)\s+(?:table|database|schema|column|index|view)\b|\bdelete\s+from\s+\w"
    r"|\bupdate\s+\w+\s+set\s+\w+\s*=|\balter\s+table\b|\binsert\s+(?:or\s+\w+\s+)?into\b|\bgrant\s+all\b"
)
# A negation just before a match makes it a warning lesson ("never call delete_function"), not an order.
_NEGATED = re.compile(r"\b(?:never|not|don'?t|avoid|without|instead\s+of|no\s+need\s+to|must\s+not|shouldn'?t)\b[^.;:!?\n]{0,25}$", _I)
# More exfiltration wording.
_FOLDED_EXFIL = [
    re.compile(
        r"\b(?:include|put|paste|echo|print|show|reveal|write|return|add|attach|append|insert|embed|copy)\b[^.;\n]{0,40}"
        r"\b(?:api\s?keys?|secrets?|tokens?|passwords?|credentials?|[a-z]+\s+api\s+key|access\s+keys?"
        r"|environment\s+variables?|env\s+vars?)\b[^.;\n]{0,30}\b(?:answer|output"
        r"|response|reply|report|message|summary)"
    ),
    re.compile(r"\b(?:upload|copy|send|export|sync|share|push)\b[^.;\n]{0,40}\b(?:to|into|onto)\s+(?:a\s+|the\s+)?public\b"),
]
# Fake markers: the prompt's own structure (entry lines, untrusted-content tags, system tags).
_MARKERS = [
    re.compile(r"<\s*/?\s*(?:system|instructions?|untrusted[\w-]*|trusted|assistant|user|developer|tool|context|prompt"
               r"|learned[\w-]*|lesson|entry|admin|sys|im_start|im_end)\s*>"),
    re.compile(r"\[\s*(?:system|admin|developer|operator|assistant|sys|root)\s*\]"),
    re.compile(r"(?:^|\n)\s*[-*]\s*\[[a-z0-9][a-z0-9_-]*\]"),
    re.compile(r"\[[a-z0-9][a-z0-9_-]*\]\s*\((?:proven|unproven|trusted|verified|active|system)\)"),
    re.compile(r"\bend\s+of\s+(?:the\s+)?(?:cheatsheet|system\s+prompt|instructions|context|lessons|prompt|rules)\b"),
]
# Fullwidth and mathematical letters read like ASCII to a model but slip past a reviewer's grep.
_COMPAT_LETTERS = re.compile("[\uff10-\uff19\uff21-\uff3a\uff3f\uff41-\uff5a\U0001d400-\U0001d7ff]")
# Cyrillic and Greek letters that look like Latin ones.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁһԛԝвкмнтАЕОРСУХІЈЅВКМНТαεορτυνκιΑΕΟΡΤΥΝΚΙΒΗΖΜΧ",
    "aeopcyxijsdhqwbkmhtAEOPCYXIJSBKMHTaeoptuvkiAEOPTYNKIBHZMX",
)
_SPACED = re.compile(r"\b(?:\w )+\w\b")

# -- URLs ---------------------------------------------------------------------------
_URL = re.compile(r"\b(?:https?|ftp|file|wss?)://\S+|\bwww\.[a-z0-9-]+\.\S+", _I)
_DOMAIN = r"(?:[a-z0-9-]+\.)+(?:com|net|org|io|ru|cn|xyz|top|info|biz|co|me|dev|app|sh|ly|site|online|tk|cc)\b(?:/\S*)?"
_FETCH = re.compile(
    rf"\b(?:fetch|download|visit|browse|open|load|get|retrieve|navigate\s+to|go\s+to|request|pull|curl|wget|import\s+from)\s+(?:\w+\s+){{0,3}}?{_DOMAIN}",
    _I,
)

# -- hidden content -----------------------------------------------------------------
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad\U000e0000-\U000e007f]")
#: Zero-width, bidi-control, soft-hyphen and tag characters (lint reports them in templates too).
INVISIBLE = _INVISIBLE
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


def fold(text: str) -> str:
    """The text as the guard's paraphrase patterns read it: spelling tricks undone, case-folded.

    NFKC (fullwidth/compatibility forms), invisible and bidi characters
    removed, Cyrillic/Greek look-alike letters mapped to Latin, letter-spaced
    words joined (``i g n o r e``), camelCase split, ``_ - . :`` between letters
    made spaces, then case-folded: ``deleteFunction``, ``delete_function``,
    ``lambda:DeleteFunction`` all read ``delete function``.
    """
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(_CONFUSABLES)
    text = _SPACED.sub(lambda m: m.group(0).replace(" ", "") if len(m.group(0)) > 5 else m.group(0), text)
    text = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    text = re.sub(r"(?<=[^\W\d_])[_\-.:]+(?=[^\W\d_])", " ", text)
    return re.sub(r"[ \t]+", " ", text).casefold()


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
        compat = _COMPAT_LETTERS.search(text)
        if compat:
            out.append(f"hidden: compatibility character U+{ord(compat.group(0)):04X} (reads as ASCII)")
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

        folded = fold(text)
        plain = _INVISIBLE.sub("", text).casefold()

        allowed = {fold(t) for t in self.allowed_tools or ()}

        def also(category: str, view: str, patterns: list[re.Pattern[str]], *, negatable: bool = False) -> None:
            if any(r.startswith(category + ":") for r in out):
                return
            for pat in patterns:
                for m in pat.finditer(view):
                    if negatable and _NEGATED.search(view[: m.start()]):
                        continue
                    if negatable and any(name in m.group(0) for name in allowed):
                        continue  # the agent's own tool: "call delete_function" is fine where it exists
                    out.append(f"{category}: {_snip(m.group(0))!r}")
                    return

        first("template", _TEMPLATE)
        also("template", plain, _MARKERS)
        first("injection", _INJECTION)
        also("injection", folded, _FOLDED_INJECTION)
        also("injection", plain, _FOREIGN_INJECTION)
        also("injection", folded, _FOLDED_WAIVER, negatable=True)
        first("jailbreak", _JAILBREAK)
        first("exfiltration", _EXFIL)
        also("exfiltration", folded, _FOLDED_EXFIL)
        first("tool", _SHELL)
        also("tool", plain, [_SQL_WRITE])
        tool = None if any(r.startswith("tool:") for r in out) else self._unknown_tool(text, code)
        if tool:
            what = "a destructive call" if code else "not an allowed tool"
            out.append(f"tool: {tool!r} is {what}")
        also("tool", folded, _FOLDED_TOOL, negatable=True)
        also("tool", plain, _FOREIGN_TOOL)
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
                if name and name not in self.allowed_tools and not _NEGATED.search(text[: m.start()]):
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
