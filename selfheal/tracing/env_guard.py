"""Switch off LangChain's and the LangSmith SDK's own env-var tracing for this process.

With ``LANGSMITH_TRACING=true`` or ``LANGCHAIN_TRACING_V2=true`` in the
environment, LangChain adds its own ``LangChainTracer`` to every model call
made outside selfheal's traced graph (the Reflector and Curator of ``curate``,
the evaluators, the optimizer) and the SDK's ``@traceable`` code traces too.
Those uploads bypass selfheal's redaction and go to project "default" (measured:
5 of 5 planted secrets sent by ``selfheal curate --dry-run``). selfheal's own
LangSmith backend (:mod:`selfheal.tracing.langsmith_backend`) sends copies of
the redacted local store instead, and does not depend on that switch.

:func:`disable_env_tracing` sets the SDK's process-wide fallback
(``langsmith.configure(enabled=False)``), which every thread consults before the
environment, and leaves the variables themselves in place: ``load_settings``
still reads ``LANGSMITH_TRACING`` as ``tracing.langsmith``. Only the legacy v1
switches (``LANGCHAIN_TRACING``/``LANGCHAIN_HANDLER``) are removed, because
LangChain raises on them once v2 tracing is off.
"""

from __future__ import annotations

import os

__all__ = ["LEGACY_TRACING_ENV", "TRACING_ENV", "disable_env_tracing", "env_tracing_enabled"]

#: Variables from which LangChain/LangSmith switch their own tracing on (any prefix they read).
TRACING_ENV = (
    "LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING",
    "LANGCHAIN_HANDLER",
)  # fmt: skip

#: Variables LangChain reads as "use the removed v1 tracer"; selfheal never reads them.
LEGACY_TRACING_ENV = ("LANGCHAIN_TRACING", "LANGCHAIN_HANDLER")


def disable_env_tracing() -> None:
    """No LangChain/LangSmith tracer starts from the environment in this process (idempotent).

    Costs nothing when no tracing variable is set (importing the SDK's switch takes ~0.3 s).
    """
    if not any(os.environ.get(var) for var in TRACING_ENV):
        return
    for var in LEGACY_TRACING_ENV:
        os.environ.pop(var, None)
    import langsmith

    langsmith.configure(enabled=False)


def env_tracing_enabled() -> bool:
    """Whether LangChain would add its own LangSmith tracer to a call made now, in this thread."""
    from langchain_core.tracers.context import _tracing_v2_is_enabled

    return bool(_tracing_v2_is_enabled())
