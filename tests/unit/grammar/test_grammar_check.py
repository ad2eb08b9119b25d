"""Schemas that compile but break during decoding are 400s before generation (real tokenizer)."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidRequest
from service.grammar import request_grammar
from service.grammar_check import check_request_grammar
from service.models import ServedModel
from service.prompting.chat_prompt import ChatPrompt, build_prompt
from service.protocol import ChatRequest, parse_request
from tests.seed import WEATHER_TOOL
from tests.unit.served import served_model


def prepare(model: ServedModel, request: ChatRequest) -> tuple[ChatPrompt, str | None]:
    """What ChatService does before generation."""
    prompt = build_prompt(model, request)
    grammar = request_grammar(request, model.dialect.syntax, model.tokenizer)
    prefill = prompt.ids[len(prompt.ids) - prompt.prefill_tokens :]
    check_request_grammar(request, grammar, prefill, model.tokenizer)
    return prompt, grammar


def _request(**fields: Any) -> Any:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return parse_request(body)


def _json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}


RECURSIVE = {"type": "object", "properties": {"a": {"$ref": "#"}}, "required": ["a"]}
MANY_OPTIONAL = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(2000)}}
CONTROL_TOKEN = {"type": "object", "properties": {"<|im_end|>": {"type": "string"}}}


@pytest.mark.parametrize("schema", [RECURSIVE, MANY_OPTIONAL, CONTROL_TOKEN])
def test_unfollowable_response_formats_are_400(schema: dict[str, Any]) -> None:
    model = served_model("llm")
    with pytest.raises(InvalidRequest) as info:
        prepare(model, _request(response_format=_json_schema(schema)))
    assert info.value.param == "response_format.json_schema.schema"


def test_unfollowable_tool_schema_names_the_tool() -> None:
    model = served_model("llm")
    tool = {"type": "function", "function": {"name": "f", "parameters": CONTROL_TOKEN}}
    with pytest.raises(InvalidRequest) as info:
        prepare(model, _request(tools=[tool], tool_choice="required"))
    assert info.value.param == "tools[0].function.parameters"


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_ordinary_grammars_pass(choice: str) -> None:
    model = served_model("llm")
    optional_recursion = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    prompt, grammar = prepare(
        model,
        _request(tools=[WEATHER_TOOL], tool_choice=choice),
    )
    assert grammar is not None and prompt.ids
    prepare(model, _request(response_format=_json_schema(optional_recursion)))
