"""The run checkpointer: LangGraph's SqliteSaver, with every state redacted before it is written.

Checkpoints hold the whole graph state (the task, every message, tool results,
model output) in ``.selfheal/checkpoints.sqlite``; without this, a secret a
tool printed sat there in clear (measured: 5 of 5 planted secrets). The
serializer redacts the state it is given, through LangChain messages and
pydantic records, with the same rules and placeholders as traces; the
metadata row (run config metadata) is redacted too. Reading a checkpoint back
yields the redacted state, which is what a resumed or inspected run should see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

if TYPE_CHECKING:
    import sqlite3

    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, ChannelVersions

    from selfheal.redact import Redactor

__all__ = ["RedactingSerializer", "RedactingSqliteSaver"]

# Keys of a config's ``configurable`` that address the checkpoint row: kept verbatim.
_ADDRESS_KEYS = frozenset({"thread_id", "checkpoint_ns", "checkpoint_id"})


class RedactingSerializer:
    """A LangGraph serializer that redacts what it is asked to dump (loads are unchanged)."""

    def __init__(self, redactor: Redactor, inner: Any | None = None) -> None:
        self.redactor = redactor
        self.inner = inner if inner is not None else JsonPlusSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self.inner.dumps_typed(self.redactor.redact_deep(obj))

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.inner.loads_typed(data)


class RedactingSqliteSaver(SqliteSaver):
    """SqliteSaver whose checkpoints, pending writes and metadata are redacted before storage."""

    def __init__(self, conn: sqlite3.Connection, redactor: Redactor) -> None:
        super().__init__(conn, serde=RedactingSerializer(redactor))
        self.redactor = redactor

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        # The metadata column is plain JSON built from ``metadata`` and the config's metadata.
        return super().put(
            self._redacted_config(config),
            checkpoint,
            self.redactor.redact(dict(metadata)),
            new_versions,
        )

    def _redacted_config(self, config: RunnableConfig) -> RunnableConfig:
        out: dict[str, Any] = dict(config)
        if isinstance(config.get("metadata"), Mapping):
            out["metadata"] = self.redactor.redact(dict(config["metadata"]))
        configurable = config.get("configurable")
        if isinstance(configurable, Mapping):
            out["configurable"] = {
                k: v if k in _ADDRESS_KEYS or not isinstance(v, str) else self.redactor.redact_text(v)
                for k, v in configurable.items()
            }
        return out  # type: ignore[return-value]
