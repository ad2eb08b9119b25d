"""Request validation: every client mistake is one InvalidRequest naming its field."""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import pytest

from service.errors import InvalidRequest
from service.protocol import parse_request
from tests.seed import WEATHER_TOOL

CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_current_weather", "arguments": '{"location": "SF"}'},
}


def _body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def _error(body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    assert "pydantic" not in info.value.message and "errors.pydantic.dev" not in info.value.message
    return info.value


def test_defaults_and_parts() -> None:
    request = parse_request(
        _body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}]}])
    )
    assert request.effective_tool_choice == "none"
    params = request.to_sampling_params(max_tokens=4, stop_token_ids=[])
    assert request.n == 1
    assert (params.temperature, params.top_p, params.top_k) == (1.0, 1.0, 0)  # OpenAI's
    assert parse_request(_body(tools=[WEATHER_TOOL])).effective_tool_choice == "auto"


def test_full_conversation_parses() -> None:
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": "60"}'},
    ]
    request = parse_request(_body(messages=messages, tools=[WEATHER_TOOL], tool_choice="auto"))
    assert len(request.messages) == 4


def test_unknown_fields_are_ignored_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="service.protocol"):
        parse_request(_body(frequency_penalty=0.5, logit_bias={}))
    assert "frequency_penalty" in caplog.text and "logit_bias" in caplog.text


def test_sampling_params_allow_list_and_seed_per_choice() -> None:
    request = parse_request(_body(temperature=0.2, top_p=0.9, top_k=5, seed=7, n=2))
    params = request.to_sampling_params(max_tokens=10, stop_token_ids=[1, 2], choice=1)
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k) == (10, 0.2, 0.9, 5)
    assert (params.seed, params.stop_token_ids, params.grammar) == (8, (1, 2), None)


def test_model_sampling_defaults_fill_only_what_the_request_leaves_out() -> None:
    defaults = {"temperature": 0.7, "top_p": 0.8, "top_k": 20}
    unset = parse_request(_body()).to_sampling_params(
        max_tokens=4, stop_token_ids=[], defaults=defaults
    )
    assert (unset.temperature, unset.top_p, unset.top_k) == (0.7, 0.8, 20)
    explicit = parse_request(_body(temperature=0, top_k=0)).to_sampling_params(
        max_tokens=4, stop_token_ids=[], defaults=defaults
    )
    assert (explicit.temperature, explicit.top_p, explicit.top_k) == (0.0, 0.8, 0)


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    request = parse_request(_body(max_tokens=5, max_completion_tokens=9))
    assert request.requested_max_tokens == 9


def _with_tool(**function: Any) -> dict[str, Any]:
    tool = copy.deepcopy(WEATHER_TOOL)
    tool["function"].update(function)
    return tool


CASES: list[tuple[str, Any, str | None]] = [
    ("not an object", [1, 2], None),
    ("missing model", {"messages": [{"role": "user", "content": "x"}]}, "model"),
    ("empty messages", _body(messages=[]), "messages"),
    ("missing content", _body(messages=[{"role": "user"}]), "messages[0].content"),
    (
        "bad content type",
        _body(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": 5}]),
        "messages[1].content",
    ),
    (
        "bad text part",
        _body(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
    ),
    ("unknown role", _body(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    ("missing role", _body(messages=[{"content": "x"}]), "messages[0].role"),
    (
        "assistant without content or calls",
        _body(messages=[{"role": "user", "content": "x"}, {"role": "assistant"}]),
        "messages[1].content",
    ),
    ("temperature too high", _body(temperature=2.5), "temperature"),
    ("top_p zero", _body(top_p=0), "top_p"),
    ("negative top_k", _body(top_k=-1), "top_k"),
    ("n too large", _body(n=9), "n"),
    ("max_tokens zero", _body(max_tokens=0), "max_tokens"),
    ("too many stops", _body(stop=["a", "b", "c", "d", "e"]), "stop"),
    ("stream options", _body(stream_options={"include_usage": True}), "stream_options"),
    (
        "json_schema without its object",
        _body(response_format={"type": "json_schema"}),
        "response_format.json_schema",
    ),
    (
        "json_schema not a schema",
        _body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "thing"}},
            }
        ),
        "response_format.json_schema.schema",
    ),
    ("unknown response format", _body(response_format={"type": "yaml"}), "response_format.type"),
    ("bad tool choice", _body(tool_choice="always"), "tool_choice"),
    ("tool name pattern", _body(tools=[_with_tool(name="get weather")]), "tools[0].function.name"),
    ("tool name too long", _body(tools=[_with_tool(name="a" * 65)]), "tools[0].function.name"),
    (
        "tool name missing",
        _body(tools=[{"type": "function", "function": {}}]),
        "tools[0].function.name",
    ),
    ("duplicate tools", _body(tools=[WEATHER_TOOL, WEATHER_TOOL]), "tools[1].function.name"),
    (
        "invalid schema",
        _body(tools=[_with_tool(parameters={"type": "object", "required": "location"})]),
        "tools[0].function.parameters",
    ),
    (
        "non-object schema",
        _body(tools=[_with_tool(parameters={"type": "string"})]),
        "tools[0].function.parameters",
    ),
    ("required without tools", _body(tool_choice="required"), "tool_choice"),
    (
        "named without tools",
        _body(tool_choice={"type": "function", "function": {"name": "f"}}),
        "tool_choice",
    ),
    (
        "named tool not in tools",
        _body(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "f"}}),
        "tool_choice.function.name",
    ),
    (
        "tool result without call",
        _body(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "c", "content": "r"},
            ]
        ),
        "messages[1].tool_call_id",
    ),
    (
        "arguments not an object",
        _body(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        "arguments not json",
        _body(
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{oops"}}],
                },
            ]
        ),
        "messages[1].tool_calls[0].function.arguments",
    ),
]


@pytest.mark.parametrize(("body", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_request(body: Any, param: str | None) -> None:
    error = _error(body)
    assert error.param == param
    assert error.kind.http_status == 400
    if param is not None:
        assert param.split("[")[0].split(".")[0] in error.message


def test_response_formats_parse() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = parse_request(
        _body(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema, "strict": True},
            }
        )
    )
    assert request.response_format is not None
    assert request.response_format.schema_dict == schema
    nameless = parse_request(
        _body(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    )
    assert nameless.response_format is not None and nameless.response_format.schema_dict == {}


def _tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"seed": 2**63}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
        ({"top_k": 2**31}, "top_k"),
        ({"top_k": 2**32 + 1}, "top_k"),
        ({"messages": [{"role": "user", "content": "a\ud800"}]}, "messages[0].content"),
        ({"stop": ["\udfff"]}, "stop[0]"),
        ({"tools": [_tool({"$schema": True})]}, "tools[0].function.parameters.$schema"),
        ({"metadata": _nested(200)}, "metadata.k.k.k.k.k.k.k"),
    ],
)
def test_values_out_of_range_name_their_field(fields: dict[str, Any], param: str) -> None:
    assert _error(_body(**fields)).param == param


def test_deep_tool_schemas_are_refused_iteratively() -> None:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(5000):  # far past the recursion limit of any recursive walk
        schema = {"type": "object", "properties": {"a": schema}}
    assert _error(_body(tools=[_tool(schema)])).param.startswith("tools[0].function")


def test_seeds_cover_int64_and_wrap_per_choice() -> None:
    request = parse_request(_body(seed=2**63 - 1, n=2))
    seeds = [
        request.to_sampling_params(max_tokens=1, stop_token_ids=[], choice=c).seed for c in (0, 1)
    ]
    assert seeds == [2**63 - 1, 0]
    negative = parse_request(_body(seed=-1)).to_sampling_params(max_tokens=1, stop_token_ids=[])
    assert negative.seed == 2**63 - 1


def test_tiny_top_p_survives_float32() -> None:
    params = parse_request(_body(top_p=1e-45)).to_sampling_params(max_tokens=1, stop_token_ids=[])
    assert params.top_p > 0 and float(np.float32(params.top_p)) > 0
