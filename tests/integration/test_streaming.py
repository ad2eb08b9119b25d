"""Streaming on the real stack: SDK ``stream=True`` and ``chat.completions.stream(...)`` over REST
and ``CreateStream`` over gRPC accumulate to exactly the non-streamed answer with the same seed;
abandoned requests (streamed or not) free their slots within about a second."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import openai
import pytest

from service.api.grpc_convert import request_to_openai
from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc
from tests.integration.conftest import API_KEY, QWEN
from tests.integration.serving import ServiceProcess, in_flight
from tests.seed import QUESTION, WEATHER_TOOL

pytestmark = pytest.mark.integration

AUTH = (("authorization", f"Bearer {API_KEY}"),)
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The current time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "celsius": {"type": "integer"}},
    "required": ["city", "celsius"],
    "additionalProperties": False,
}
SEEDED: dict[str, Any] = {"model": QWEN, "seed": 7, "temperature": 0.7, "max_tokens": 96}
CASES: dict[str, dict[str, Any]] = {
    "seed weather flow (auto)": {"messages": [QUESTION], "tools": [WEATHER_TOOL]},
    "forced (named)": {
        "messages": [{"role": "user", "content": "How warm is it in Paris?"}],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_current_weather"}},
    },
    "parallel (required)": {
        "messages": [
            {"role": "user", "content": "What is the weather in Tokyo and what time is it there?"}
        ],
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "tool_choice": "required",
    },
    "none": {
        "messages": [{"role": "user", "content": "Say hello to Ana in one sentence."}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
    },
    "json_schema": {
        "messages": [{"role": "user", "content": "Invent the weather in Lima as JSON."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": ANSWER_SCHEMA, "strict": True},
        },
    },
}


def _counts(usage: Any) -> tuple[int, int, int]:
    """Usage without ``cached_tokens``, which differs by design: the second of two equal
    requests finds its prompt in the prefix cache."""
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens


def _message(message: Any) -> dict[str, Any]:
    """What must match: content, calls' names and arguments (ids differ by design)."""
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return {"content": message.content, "tool_calls": calls}


def _accumulate(chunks: list[Any]) -> tuple[dict[str, Any], str | None, Any]:
    """Message, finish reason and usage from SDK chunks (plain ``stream=True``)."""
    content: str | None = None
    calls: dict[int, list[str]] = {}
    ids: dict[int, str] = {}
    finish, usage = None, None
    for chunk in chunks:
        assert chunk.object == "chat.completion.chunk" and chunk.id == chunks[0].id
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            assert finish is None, "nothing after the finish"
            delta = choice.delta
            if delta.content is not None:
                content = (content or "") + delta.content
            for call in delta.tool_calls or []:
                if call.id:
                    assert call.index not in calls and call.function.name
                    ids[call.index] = call.id
                    calls[call.index] = [call.function.name, ""]
                calls[call.index][1] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(re.match(r"^call_\w{24}$", i) for i in ids.values())
    message = {"content": content, "tool_calls": [tuple(calls[i]) for i in sorted(calls)]}
    return message, finish, usage


@pytest.mark.parametrize("case", list(CASES))
def test_sdk_stream_accumulates_to_the_completion(client: openai.OpenAI, case: str) -> None:
    body = {**SEEDED, **CASES[case]}
    completion = client.chat.completions.create(**body)
    expected = _message(completion.choices[0].message)
    chunks = list(
        client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    )
    message, finish, usage = _accumulate(chunks)
    assert message == {**expected, "tool_calls": [tuple(c) for c in expected["tool_calls"]]}
    assert finish == completion.choices[0].finish_reason
    assert _counts(usage) == _counts(completion.usage) and chunks[-1].choices == []
    if case != "none" and case != "json_schema":
        assert finish == "tool_calls"
    with client.chat.completions.stream(**body, stream_options={"include_usage": True}) as stream:
        final = stream.get_final_completion()
    assert _message(final.choices[0].message) == expected
    assert final.choices[0].finish_reason == completion.choices[0].finish_reason
    assert _counts(final.usage) == _counts(completion.usage)


@pytest.fixture
async def stub(qwen_service: ServiceProcess) -> AsyncIterator[chat_pb2_grpc.ChatCompletionsStub]:
    async with grpc.aio.insecure_channel(qwen_service.grpc_target) as channel:
        yield chat_pb2_grpc.ChatCompletionsStub(channel)


def _proto_request(body: dict[str, Any]) -> chat_pb2.ChatCompletionRequest:
    tools = [
        chat_pb2.Tool(
            type="function",
            function=chat_pb2.FunctionDefinition(
                name=t["function"]["name"],
                description=t["function"]["description"],
                parameters_json=json.dumps(t["function"]["parameters"]),
            ),
        )
        for t in body.get("tools", [])
    ]
    request = chat_pb2.ChatCompletionRequest(
        model=body["model"],
        messages=[chat_pb2.Message(role=m["role"], content=m["content"]) for m in body["messages"]],
        tools=tools,
        seed=body["seed"],
        temperature=body["temperature"],
        max_tokens=body["max_tokens"],
    )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        request.tool_choice.function_name = choice["function"]["name"]
    elif choice is not None:
        request.tool_choice.mode = chat_pb2.ToolChoice.Mode.Value(choice.upper())
    if "response_format" in body:
        request.response_format.type = "json_schema"
        schema = body["response_format"]["json_schema"]
        request.response_format.json_schema_json = json.dumps(schema)
    assert request_to_openai(request)["messages"] == body["messages"]
    return request


@pytest.mark.parametrize("case", list(CASES))
async def test_grpc_create_stream_accumulates_to_create(
    stub: chat_pb2_grpc.ChatCompletionsStub, case: str
) -> None:
    request = _proto_request({**SEEDED, **CASES[case]})
    completion = await stub.Create(request, metadata=AUTH)
    request.stream_options.include_usage = True
    chunks = [chunk async for chunk in stub.CreateStream(request, metadata=AUTH)]
    content, calls, finish = None, [], chat_pb2.FINISH_REASON_UNSPECIFIED
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        if choice.delta.HasField("content"):
            content = (content or "") + choice.delta.content
        for call in choice.delta.tool_calls:
            if call.id:
                calls.append([call.function.name, ""])
            calls[call.index][1] += call.function.arguments
        finish = choice.finish_reason or finish
    message = completion.choices[0].message
    assert content == (message.content if message.HasField("content") else None)
    assert calls == [[c.function.name, c.function.arguments] for c in message.tool_calls]
    assert finish == completion.choices[0].finish_reason
    assert not chunks[-1].choices and _counts(chunks[-1].usage) == _counts(completion.usage)


LONG = "Write a long story about a lighthouse keeper, at least 500 words."


async def _wait_idle(url: str, timeout_s: float) -> float:
    """Seconds until the in-flight gauge reads 0 (fails after ``timeout_s``)."""
    started = time.monotonic()
    while await asyncio.to_thread(in_flight, url) > 0:
        assert time.monotonic() - started < timeout_s, "a request stayed in flight"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _cancelled(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(r'^fncall_requests_total\{face="rest",status="499"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("stream", [False, True])
async def test_abandoned_rest_requests_free_their_slots(
    qwen_service: ServiceProcess, stream: bool
) -> None:
    url, count = qwen_service.url, 4
    before = await asyncio.to_thread(_cancelled, url)
    body = {
        "model": QWEN,
        "messages": [{"role": "user", "content": LONG}],
        "max_tokens": 1500,
        "temperature": 0,  # the same long story every time: no sampled short answer ends early
        "stream": stream,
    }
    headers = {"authorization": f"Bearer {API_KEY}"}
    started = asyncio.Event()

    async def abandon() -> None:
        async with (
            httpx.AsyncClient(timeout=120) as http,
            http.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r,
        ):
            async for _ in r.aiter_bytes():  # a streamed answer: its first chunk arrived
                started.set()
                await asyncio.Event().wait()

    tasks = [asyncio.create_task(abandon()) for _ in range(count)]
    deadline = time.monotonic() + 60
    while await asyncio.to_thread(in_flight, url) < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    if stream:
        await asyncio.wait_for(started.wait(), 60)
    await asyncio.sleep(0.5)
    for task in tasks:
        task.cancel()  # closes the connections
    await asyncio.gather(*tasks, return_exceptions=True)
    assert await _wait_idle(url, timeout_s=3.0) < 2.0
    assert await asyncio.to_thread(_cancelled, url) == before + count


async def test_curl_style_sse_wire_format(qwen_service: ServiceProcess) -> None:
    body = {**SEEDED, "messages": [{"role": "user", "content": "Say hi."}], "stream": True}
    async with httpx.AsyncClient(timeout=120) as http:
        response = await http.post(
            f"{qwen_service.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {API_KEY}"},
        )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert "usage" not in chunks[-1]


def test_stream_mistakes_are_400_before_any_byte(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=QWEN, messages=[QUESTION], stream=True, temperature=3.0
        )
    assert info.value.status_code == 400 and info.value.param == "temperature"


async def test_grpc_stream_deadline_stops_generation(
    qwen_service: ServiceProcess, stub: chat_pb2_grpc.ChatCompletionsStub
) -> None:
    request = _proto_request(
        {**SEEDED, "max_tokens": 1500, "messages": [{"role": "user", "content": LONG}]}
    )
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stub.CreateStream(request, metadata=AUTH, timeout=6.0):
            pass
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 10  # 1500 tokens take minutes
    await _wait_idle(qwen_service.url, timeout_s=5.0)
