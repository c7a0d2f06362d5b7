"""Error types shared by the library and the CLI.

Every error a *user* can cause (bad file, bad config, unreachable endpoint)
is a :class:`SelfhealError`: the CLI prints its one-line message and exits
with ``exit_code`` instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SelfhealError(Exception):
    """A user-facing error: one line, no traceback, a non-zero exit."""

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(SelfhealError):
    """selfheal.yaml or an environment override is invalid."""


class FileFormatError(SelfhealError):
    """A data file (YAML, Jinja, scenario) is malformed; names file and line."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = Path(path)
        self.line = line
        self.detail = message
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")


class ModelError(SelfhealError):
    """The chat/embedding model failed: unreachable, timed out, bad response."""


class CacheMissError(ModelError):
    """Replay mode was asked for a response it never recorded."""


class ScenarioError(SelfhealError):
    """A scenario cannot be loaded or seeded."""
