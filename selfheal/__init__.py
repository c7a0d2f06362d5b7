"""selfheal: git-native prompt and cheatsheet ops for self-improving LangGraph agents."""

from selfheal.domains.base import CheckResult, Verdict  # noqa: F401  (public API)

__version__ = "0.1.0"
