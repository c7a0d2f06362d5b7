"""The LangSmith stub speaks what the real client sends, on every path the client may take."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from helpers.langsmith_stub import LangSmithStub
from langsmith import Client

from selfheal.tracing.langsmith_backend import ensure_project


@pytest.fixture
def stub() -> Iterator[LangSmithStub]:
    with LangSmithStub(zstd=True) as s:
        yield s


def _run(trace: uuid.UUID, run_id: uuid.UUID, parent: uuid.UUID | None = None) -> dict:
    stamp = datetime.now(UTC)
    order = f"{stamp:%Y%m%dT%H%M%S%fZ}{trace}"
    if parent is not None:
        order += f".{stamp:%Y%m%dT%H%M%S%fZ}{run_id}"
    return {
        "id": run_id,
        "trace_id": trace,
        "parent_run_id": parent,
        "dotted_order": order,
        "name": "step",
        "run_type": "chain",
        "start_time": stamp,
        "inputs": {"q": 1},
        "session_name": "p",
    }


def test_single_run_endpoints_and_batch_endpoint(stub: LangSmithStub) -> None:
    client = Client(api_url=stub.url, api_key="k", auto_batch_tracing=False)
    try:
        trace = uuid.uuid4()
        client.create_run(**_run(trace, trace))  # POST /runs
        client.update_run(trace, outputs={"a": 2}, end_time=datetime.now(UTC))  # PATCH /runs/{id}
        child = uuid.uuid4()
        client.batch_ingest_runs(create=[_run(trace, child, trace)])  # POST /runs/batch
        assert ("POST", "/runs") in stub.requests and ("POST", "/runs/batch") in stub.requests
        assert stub.runs[str(trace)]["outputs"] == {"a": 2}
        assert stub.runs[str(child)]["parent_run_id"] == str(trace)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            assert client.read_run(trace).status == "success"  # GET /runs/{id}
    finally:
        client.close(timeout=0)


def test_compressed_background_tracing_reaches_the_stub(stub: LangSmithStub) -> None:
    """The SDK's own auto-batching (zstd multipart when /info allows it) is parsed too."""
    client = Client(api_url=stub.url, api_key="k")
    try:
        deadline = time.monotonic() + 5
        while client.compressed_traces is None and time.monotonic() < deadline:
            time.sleep(0.01)  # its thread reads /info, then switches compression on
        trace = uuid.uuid4()
        client.create_run(**_run(trace, trace))
        client.flush()
        assert stub.wait_for_runs([trace])
        assert stub.runs[str(trace)]["inputs"] == {"q": 1}
        assert stub.multipart_encodings == ["zstd"]
    finally:
        client.close(timeout=1)


def test_projects_are_created_once(stub: LangSmithStub) -> None:
    client = Client(api_url=stub.url, api_key="k", auto_batch_tracing=False)
    try:
        first = ensure_project(client, "fresh")  # GET (404 -> empty) then POST /sessions
        assert ("POST", "/sessions") in stub.requests
        assert ensure_project(client, "fresh") == first == uuid.UUID(stub.session_id("fresh"))
    finally:
        client.close(timeout=0)


def test_fail_mode_answers_500(stub: LangSmithStub) -> None:
    import requests

    stub.set_mode("fail")
    assert requests.get(f"{stub.url}/info", timeout=2).status_code == 500
    stub.set_mode("ok")
    assert requests.get(f"{stub.url}/info", timeout=2).json()["version"]
