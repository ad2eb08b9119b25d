"""Protobuf requests become the JSON body a REST client would send; responses go back."""

import json

import pytest

from service.api.grpc_convert import completion_to_proto, models_to_proto, request_to_openai
from service.api.proto.fncall.v1 import chat_pb2
from service.chat_types import ChatCompletion, ModelCard, ModelList
from service.errors import InvalidRequest

SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}, "days": {"maximum": 7}}}


def _weather_request(**kwargs: object) -> chat_pb2.ChatCompletionRequest:
    return chat_pb2.ChatCompletionRequest(
        model="m",
        messages=[
            chat_pb2.Message(role="user", content="Weather in Paris?"),
            chat_pb2.Message(
                role="assistant",
                tool_calls=[
                    chat_pb2.ToolCall(
                        id="call_1",
                        type="function",
                        function=chat_pb2.FunctionCall(name="w", arguments='{"location":"Paris"}'),
                    )
                ],
            ),
            chat_pb2.Message(role="tool", content='{"t": 70}', tool_call_id="call_1"),
        ],
        tools=[
            chat_pb2.Tool(
                type="function",
                function=chat_pb2.FunctionDefinition(
                    name="w", description="weather", parameters_json=json.dumps(SCHEMA)
                ),
            )
        ],
        **kwargs,  # type: ignore[arg-type]
    )


def test_request_matches_the_openai_body() -> None:
    req = _weather_request(
        tool_choice=chat_pb2.ToolChoice(function_name="w"),
        temperature=0.0,
        seed=7,
        stop=["\n\n"],
    )
    assert request_to_openai(req) == {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"location":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": '{"t": 70}', "tool_call_id": "call_1"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "w", "description": "weather", "parameters": SCHEMA},
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "w"}},
        "temperature": 0.0,
        "seed": 7,
        "stop": ["\n\n"],
    }


def test_unset_optionals_are_left_to_server_defaults() -> None:
    body = request_to_openai(chat_pb2.ChatCompletionRequest(model="m"))
    assert body == {"model": "m", "messages": []}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (chat_pb2.ToolChoice.NONE, "none"),
        (chat_pb2.ToolChoice.AUTO, "auto"),
        (chat_pb2.ToolChoice.REQUIRED, "required"),
    ],
)
def test_tool_choice_modes(mode: int, expected: str) -> None:
    req = _weather_request(tool_choice=chat_pb2.ToolChoice(mode=mode))  # type: ignore[arg-type]
    assert request_to_openai(req)["tool_choice"] == expected


def test_bad_schema_json_is_a_client_error() -> None:
    req = chat_pb2.ChatCompletionRequest(
        model="m",
        tools=[chat_pb2.Tool(function=chat_pb2.FunctionDefinition(name="w", parameters_json="{"))],
    )
    with pytest.raises(InvalidRequest) as err:
        request_to_openai(req)
    assert err.value.param == "tools[0].function.parameters"


def test_completion_round_trip() -> None:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 123,
        "model": "m",
        "system_fingerprint": "fp",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "w", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    }
    proto = completion_to_proto(ChatCompletion.model_validate(body))
    assert proto.choices[0].finish_reason == chat_pb2.TOOL_CALLS
    assert not proto.choices[0].message.HasField("content")
    assert proto.choices[0].message.tool_calls[0].function.name == "w"
    assert proto.usage.total_tokens == 8
    listed = models_to_proto(ModelList(data=[ModelCard(id="m", created=1, owned_by="fncall")]))
    assert [m.id for m in listed.data] == ["m"]
