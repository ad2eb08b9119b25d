"""Responses request → Chat Completions body, and 400s for what this server cannot honour."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidRequest
from service.responses.request import parse_request, to_chat

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_current_weather",
    "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    "strict": True,
}


def _chat(history: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    body = {"model": "m", "input": "hi", **fields}
    return to_chat(parse_request(body), history or []).body


def test_string_input_is_one_user_message() -> None:
    assert _chat() == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_instructions_lead_as_system_but_are_not_kept_in_the_conversation() -> None:
    translation = to_chat(
        parse_request({"model": "m", "input": "hi", "instructions": "Be brief."}), []
    )
    assert translation.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert translation.conversation == [{"role": "user", "content": "hi"}]


def test_items_become_messages_and_calls_join_their_assistant_turn() -> None:
    items = [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "Weather?"}],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
            "id": "msg_1",
            "status": "completed",
        },
        {
            "type": "function_call",
            "call_id": "c1",
            "name": "w",
            "arguments": '{"a": 1}',
            "id": "fc_1",
        },
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "rain"}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": []},
    ]
    messages = _chat(input=items)["messages"]
    assert messages == [
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "w", "arguments": '{"a": 1}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_a_call_after_a_user_message_opens_its_own_turn() -> None:
    items = [
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
    ]
    assert _chat(input=items)["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
        ],
    }


def test_history_comes_before_the_new_input() -> None:
    history = [{"role": "user", "content": "before"}, {"role": "assistant", "content": "ok"}]
    messages = _chat(history, instructions="sys")["messages"]
    assert [m["content"] for m in messages] == ["sys", "before", "ok", "hi"]


def test_generation_fields_are_renamed() -> None:
    body = _chat(
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_current_weather"},
        parallel_tool_calls=False,
        max_output_tokens=32,
        temperature=0.5,
        top_p=0.9,
        user="u",
        metadata={"k": "v"},
        store=False,
        include=["reasoning.encrypted_content"],
        service_tier="auto",
        reasoning={"effort": None},
        background=False,
        truncation="disabled",
    )
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the weather",
                "parameters": WEATHER["parameters"],
                "strict": True,
            },
        }
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_current_weather"}}
    assert (body["parallel_tool_calls"], body["max_completion_tokens"]) == (False, 32)
    assert (body["temperature"], body["top_p"], body["user"]) == (0.5, 0.9, "u")
    assert not {"metadata", "store", "include", "service_tier", "truncation"} & set(body)


@pytest.mark.parametrize("choice", ["auto", "none", "required"])
def test_string_tool_choices_pass_through(choice: str) -> None:
    assert _chat(tools=[WEATHER], tool_choice=choice)["tool_choice"] == choice


@pytest.mark.parametrize(
    ("text_format", "response_format"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True},
            {
                "type": "json_schema",
                "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True},
            },
        ),
    ],
)
def test_text_format_becomes_response_format(
    text_format: dict[str, Any], response_format: dict[str, Any] | None
) -> None:
    body = _chat(text={"format": text_format})
    assert body.get("response_format") == response_format


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
        (
            {"tools": [WEATHER, {"type": "file_search", "vector_store_ids": []}]},
            "tools[1].type",
            "unsupported_value",
        ),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice.type", "unsupported_value"),
        ({"background": True}, "background", "unsupported_parameter"),
        ({"conversation": "conv_1"}, "conversation", "unsupported_parameter"),
        ({"prompt": {"id": "p"}}, "prompt", "unsupported_parameter"),
        ({"reasoning": {"effort": "low"}}, "reasoning", "unsupported_parameter"),
        ({"top_logprobs": 2}, "top_logprobs", "unsupported_parameter"),
        ({"include": ["message.output_text.logprobs"]}, "include", "unsupported_parameter"),
        ({"truncation": "auto"}, "truncation", "unsupported_parameter"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type", "unsupported_value"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "u"}]}]},
            "input[0].content[0].type",
            "unsupported_value",
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_file"}],
                    }
                ]
            },
            "input[0].output[0].type",
            "unsupported_value",
        ),
    ],
)
def test_unsupported_is_a_400_naming_it(fields: dict[str, Any], param: str, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _chat(**fields)
    assert (caught.value.param, caught.value.code) == (param, code)
    assert "not supported" in caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ([], None),
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name"),
        ({"model": "m", "input": ["x"]}, "input[0]"),
        ({"model": "m", "input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}},
            "text.format.name",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: Any, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat(parse_request(body), [])
    assert caught.value.param == param
    if param is not None:
        assert f"'{param}'" in caught.value.message


@pytest.mark.parametrize(
    ("chat_param", "responses_param"),
    [
        ("messages", "input"),
        ("messages[0].content", "instructions"),
        ("messages[1].content", "previous_response_id"),
        ("messages[2].content", "input[0].content"),
        ("messages[3].tool_calls[1].function.arguments", "input[3].arguments"),
        ("messages[4].tool_call_id", "input[4].call_id"),
        ("tools[0].function.parameters", "tools[0].parameters"),
        ("tool_choice.function.name", "tool_choice.name"),
        ("response_format.json_schema.schema", "text.format.schema"),
        ("max_completion_tokens", "max_output_tokens"),
        ("model", "model"),
    ],
)
def test_chat_errors_are_renamed_to_responses_fields(chat_param: str, responses_param: str) -> None:
    items = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y"},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "[]"},
        {"type": "function_call_output", "call_id": "c1", "output": "z"},
    ]
    request = parse_request({"model": "m", "instructions": "s", "input": items, "tools": [WEATHER]})
    translation = to_chat(request, [{"role": "user", "content": "old"}])
    error = InvalidRequest(f"Invalid value for '{chat_param}': no.", param=chat_param, code="c")
    renamed = translation.params.rename(error)
    assert (renamed.param, renamed.code) == (responses_param, "c")
    assert renamed.message == f"Invalid value for '{responses_param}': no."
