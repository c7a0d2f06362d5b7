"""``with_structured_output`` for our chat models, by the method the backend supports.

llama.cpp (embedded or its server) handles ``response_format={"type":
"json_object", "schema": ...}`` (a grammar) but fails on ``json_schema`` and on
forced tool choice; OpenAI-compatible endpoints handle a named tool choice.
Both paths bind kwargs on the *given* model, so a caching wrapper keys and
replays them like any other call.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

StructuredMethod = Literal["json_object", "function_calling"]


def _is_model_class(schema: Any) -> bool:
    return isinstance(schema, type) and issubclass(schema, BaseModel)


def json_schema_of(schema: dict[str, Any] | type) -> dict[str, Any]:
    """A plain JSON schema (refs resolved) for a pydantic class, TypedDict, tool or JSON schema."""
    if isinstance(schema, dict) and "properties" in schema and "function" not in schema:
        return schema
    fn = convert_to_openai_tool(schema)["function"]
    params = dict(fn.get("parameters") or {"type": "object", "properties": {}})
    if fn.get("description") and "description" not in params:
        params["description"] = fn["description"]
    return params


def structured_runnable(
    model: BaseChatModel,
    schema: dict[str, Any] | type,
    *,
    method: StructuredMethod,
    include_raw: bool = False,
) -> Runnable[Any, Any]:
    """``model`` constrained to ``schema``; returns parsed output (or raw/parsed/parsing_error)."""
    parser: Runnable[Any, Any]
    if method == "json_object":
        llm: Runnable[Any, Any] = model.bind(
            response_format={"type": "json_object", "schema": json_schema_of(schema)}
        )
        if _is_model_class(schema):
            parser = PydanticOutputParser(pydantic_object=cast(type[BaseModel], schema))
        else:
            parser = JsonOutputParser()
    elif method == "function_calling":
        name = convert_to_openai_tool(schema)["function"]["name"]
        llm = model.bind_tools([schema], tool_choice=name)
        if _is_model_class(schema):
            parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        else:
            parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
    else:  # pragma: no cover - guarded by the Literal
        raise ValueError(f"unknown structured output method {method!r}")
    if not include_raw:
        return llm | parser
    parse = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    fallback = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([fallback], exception_key="parsing_error")
