"""selfheal: git-native prompt and cheatsheet ops for self-improving LangGraph agents."""

__version__ = "0.1.0"
