"""The seed's weather flow and the error cases through the real ``openai`` SDK.

Runs on the session's shared ``fncall serve`` stack (``qwen_service``: embedded Triton, the built
default Qwen model, one API key) and talks to it only over HTTP, with sync and async clients.
Tool-calling requests decode greedily so the small model's answers are stable.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.integration.conftest import API_KEY, QWEN, REQUEST_TIMEOUT_S, openai_client
from tests.integration.serving import ServiceProcess
from tests.seed import QUESTION, WEATHER_TOOL, get_current_weather

pytestmark = pytest.mark.integration

TOOLS: Any = [WEATHER_TOOL]
GREEDY: dict[str, Any] = {"temperature": 0.0, "max_tokens": 128}


@pytest.fixture
async def async_client(qwen_service: ServiceProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(
        base_url=f"{qwen_service.url}/v1",
        api_key=API_KEY,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
    )
    async with sdk:
        yield sdk


def _arguments(call: Any) -> dict[str, Any]:
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments, dict)
    return arguments


def test_models_list_names_the_default_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [QWEN]
    assert client.models.retrieve(QWEN).id == QWEN


def _location(call: Any) -> str:
    assert call.type == "function" and call.function.name == "get_current_weather"
    location = _arguments(call)["location"]
    assert isinstance(location, str), call.function.arguments
    return location.lower()


def test_seed_weather_flow(client: openai.OpenAI) -> None:
    """The seed page step by step: a call, the client runs it, then a text answer."""
    messages: list[Any] = [QUESTION]
    response = client.chat.completions.create(model=QWEN, messages=messages, tools=TOOLS, **GREEDY)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_") and "san francisco" in _location(call)
    assert response.usage is not None and response.usage.prompt_tokens > 0

    messages.append(choice.message)
    for tool_call in choice.message.tool_calls or []:
        result = get_current_weather(location=_arguments(tool_call)["location"])
        messages.append({"tool_call_id": tool_call.id, "role": "tool", "content": result})
    second = client.chat.completions.create(model=QWEN, messages=messages, **GREEDY)
    answer = second.choices[0]
    assert answer.finish_reason == "stop" and not answer.message.tool_calls
    assert answer.message.content and "60" in answer.message.content
    assert not answer.message.content.lstrip().startswith(("{", "<tool_call>"))


def test_follow_up_that_still_offers_tools_answers_with_text(client: openai.OpenAI) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_current_weather", "arguments": '{"location": "San Francisco"}'},
    }
    messages: list[Any] = [
        QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": get_current_weather("San Francisco")},
    ]
    response = client.chat.completions.create(model=QWEN, messages=messages, tools=TOOLS, **GREEDY)
    content = response.choices[0].message.content or ""
    assert not content.lstrip().startswith("{") and "60" in content


@pytest.mark.parametrize(
    "tool_choice",
    ["required", {"type": "function", "function": {"name": "get_current_weather"}}],
    ids=["required", "named"],
)
def test_forced_tool_choice_calls_the_weather_tool(client: openai.OpenAI, tool_choice: Any) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    response = client.chat.completions.create(
        model=QWEN, messages=[question], tools=TOOLS, tool_choice=tool_choice, **GREEDY
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls", choice.message
    (call,) = choice.message.tool_calls or []
    assert "paris" in _location(call)


def test_tool_choice_none_answers_with_text(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=QWEN, messages=[QUESTION], tools=TOOLS, tool_choice="none", **GREEDY
    )
    choice = response.choices[0]
    assert choice.finish_reason in ("stop", "length") and not choice.message.tool_calls
    assert choice.message.content


def test_parallel_calls_for_two_cities(client: openai.OpenAI) -> None:
    """The small model calls once per city in about 1 of 8 sampled answers (3 of 24 measured),
    so this asks for 8 seeded choices and needs one with both calls."""
    question: Any = {
        "role": "user",
        "content": "What is the weather in Paris and in Tokyo? Call the tool for each city.",
    }
    response = client.chat.completions.create(
        model=QWEN, messages=[question], tools=TOOLS, n=8, seed=16, max_tokens=100
    )
    both = [choice for choice in response.choices if _calls_both_cities(choice)]
    assert both, [choice.message for choice in response.choices]
    for choice in both:
        assert choice.finish_reason == "tool_calls"
        assert len({call.id for call in choice.message.tool_calls or []}) == 2


def _calls_both_cities(choice: Any) -> bool:
    calls = choice.message.tool_calls or []
    cities = " ".join(call.function.arguments.lower() for call in calls)
    return len(calls) == 2 and "paris" in cities and "tokyo" in cities


async def test_async_client_named_call_and_n_choices(async_client: openai.AsyncOpenAI) -> None:
    named: Any = {"type": "function", "function": {"name": "get_current_weather"}}
    response = await async_client.chat.completions.create(
        model=QWEN, messages=[QUESTION], tools=TOOLS, tool_choice=named, n=2, seed=3, **GREEDY
    )
    assert [choice.index for choice in response.choices] == [0, 1]
    calls = [call for choice in response.choices for call in choice.message.tool_calls or []]
    assert len(calls) == 2 and len({call.id for call in calls}) == 2
    assert all("san francisco" in _location(call) for call in calls)


BAD_REQUESTS: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("empty messages", {"messages": []}, "messages", None),
    ("bad role", {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", None),
    ("temperature", {"temperature": 2.5}, "temperature", None),
    ("top_p", {"top_p": 0}, "top_p", None),
    ("n", {"n": 0}, "n", None),
    ("max_tokens", {"max_tokens": 0}, "max_tokens", None),
    ("max_tokens type", {"max_tokens": "many"}, "max_tokens", None),
    (
        "stream_options without stream",
        {"stream_options": {"include_usage": True}},
        "stream_options",
        None,
    ),
    (
        "json_schema without a schema object",
        {"response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        None,
    ),
    (
        "tool name",
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "tools[0].function.name",
        None,
    ),
    ("duplicate tool", {"tools": TOOLS * 2}, "tools[1].function.name", None),
    (
        "bad schema",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}]},
        "tools[0].function.parameters",
        None,
    ),
    ("required without tools", {"tool_choice": "required"}, "tool_choice", None),
    (
        "named tool not in tools",
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice.function.name",
        None,
    ),
    (
        "orphan tool result",
        {"messages": [QUESTION, {"role": "tool", "tool_call_id": "call_1", "content": "{}"}]},
        "messages[1].tool_call_id",
        None,
    ),
    (
        "context overflow",
        {"messages": [{"role": "user", "content": "word " * 5000}]},
        "messages",
        "context_length_exceeded",
    ),
]


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[c[0] for c in BAD_REQUESTS],
)
def test_client_mistakes_are_400_envelopes(
    client: openai.OpenAI, fields: dict[str, Any], param: str, code: str | None
) -> None:
    body: dict[str, Any] = {"model": QWEN, "messages": [QUESTION], **fields}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**body)
    error = info.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert (error.param, error.code) == (param, code)
    assert error.response.json()["error"]["message"]


def test_malformed_json_body_is_a_400(client: openai.OpenAI, qwen_service: ServiceProcess) -> None:
    request = urllib.request.Request(
        f"{qwen_service.url}/v1/chat/completions",
        data=b'{"model": ',
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    with info.value as response:
        assert response.status == 400
        assert json.loads(response.read())["error"]["type"] == "invalid_request_error"


def test_wrong_api_key_is_an_authentication_error(qwen_service: ServiceProcess) -> None:
    sdk = openai_client(qwen_service, api_key="wrong")
    with sdk, pytest.raises(openai.AuthenticationError) as info:
        sdk.chat.completions.create(model=QWEN, messages=[QUESTION])
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"


def test_unknown_model_id_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-4o")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as info:  # as OpenAI answers an unknown model
        client.chat.completions.create(model="gpt-4o", messages=[QUESTION])
    error = info.value
    assert error.status_code == 404 and error.type == "invalid_request_error"
    assert (error.param, error.code) == ("model", "model_not_found")
