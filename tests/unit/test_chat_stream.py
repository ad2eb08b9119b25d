"""ChatService.stream: chunk sequences over replayed Qwen token streams, and their equality
with ChatService.create for the same answer."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tokenizers import Tokenizer

from service.chat import ChatService
from service.chat_types import ChatCompletionChunk
from service.errors import ModelNotFound, Overloaded
from service.models import ServedModel
from tests.unit.served import REPOSITORY, served_model
from tests.unit.test_chat import CALL_TEXT, Script, _body, _create, _service


@pytest.fixture(scope="module")
def qwen() -> ServedModel:
    return served_model("llm")


@pytest.fixture(scope="module")
def qwen_tokenizer(qwen: ServedModel) -> Tokenizer:
    return Tokenizer.from_file(str(REPOSITORY / "llm" / "1" / "tokenizer.json"))


WEATHER_CALL = '{"name": "get_current_weather", "arguments": {"location": "東京"}}'
ANSWERS = [
    "The weather in San Francisco is 60°F and sunny ☀️. Enjoy!",
    CALL_TEXT,
    f"Let me check that.\n{CALL_TEXT}\nOne moment.",
    f"{CALL_TEXT}\n<tool_call>\n{WEATHER_CALL}\n</tool_call>",
    f"  {WEATHER_CALL}",
    f"Here:\n```json\n{WEATHER_CALL}\n```",
    '{"note": "not a call"} and some words',
    "Use <tool_call> like this: nothing.",
]


async def _stream(service: ChatService, body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = await service.stream(body)
    return [chunk.to_openai() async for chunk in chunks]


def _accumulate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client builds from the chunks (as the openai SDK does); checks their order."""
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["id"] == chunks[0]["id"] and chunk["created"] == chunks[0]["created"]
        if not chunk["choices"]:
            usage = chunk["usage"]
        for part in chunk["choices"]:
            choice = choices.setdefault(part["index"], {"finish_reason": None})
            delta = part["delta"]
            if "role" in delta:
                assert "message" not in choice, "role comes first, once"
                choice["message"] = {"role": delta["role"], "content": None}
            message = choice["message"]
            assert choice["finish_reason"] is None, "nothing after the finish"
            if "content" in delta:
                message["content"] = (message["content"] or "") + delta["content"]
            for call in delta.get("tool_calls", []):
                calls = message.setdefault("tool_calls", [])
                if call["index"] == len(calls):
                    assert set(call) == {"index", "id", "type", "function"}
                    assert call["function"]["arguments"] == ""
                    calls.append({"id": call["id"], "type": call["type"], "function": {}})
                    calls[-1]["function"] = {"name": call["function"]["name"], "arguments": ""}
                else:
                    assert set(call) == {"index", "function"} and "name" not in call["function"]
                    calls[call["index"]]["function"]["arguments"] += call["function"]["arguments"]
            choice["finish_reason"] = part["finish_reason"]
    listed = [{"index": i, **choices[i], "logprobs": None} for i in sorted(choices)]
    return {"choices": listed, "usage": usage}


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    for choice in body["choices"]:
        for call in choice["message"].get("tool_calls", []):
            assert call.pop("id").startswith("call_")
    return body


@pytest.mark.parametrize("step", [1, 2, 5])
@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize(
    "fields", [{}, {"tools": None}, {"parallel_tool_calls": False}, {"stop": ["moment", "Enjoy"]}]
)
async def test_streamed_chunks_accumulate_to_the_completion(
    qwen: ServedModel, qwen_tokenizer: Tokenizer, answer: str, step: int, fields: dict[str, Any]
) -> None:
    service, _ = _service(qwen, qwen_tokenizer, Script(answer, step=step))
    body = _body(qwen, **fields)
    completion = await _create(service, body)
    chunks = await _stream(
        service, {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    streamed = _accumulate(chunks)
    assert streamed["usage"] == completion["usage"]
    expected = _without_ids(completion)["choices"]
    assert _without_ids(streamed)["choices"] == expected
    for chunk in chunks[:-1]:
        for part in chunk["choices"]:
            content = part["delta"].get("content") or ""
            assert "<tool_call>" not in content or "<tool_call>" in (
                completion["choices"][0]["message"]["content"] or ""
            )


async def test_forced_calls_stream_as_tool_call_deltas(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    named = {"type": "function", "function": {"name": "get_current_weather"}}
    service, _ = _service(qwen, qwen_tokenizer, '{"location": "Paris"}}\n</tool_call>')
    body = _body(qwen, tool_choice=named)
    completion = await _create(service, body)
    chunks = await _stream(service, {**body, "stream": True})
    assert _without_ids(_accumulate(chunks))["choices"] == _without_ids(completion)["choices"]
    assert completion["choices"][0]["finish_reason"] == "tool_calls"


async def test_content_streams_while_the_answer_is_generated(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(
        qwen, qwen_tokenizer, Script("Hello there, friend. " * 4, block=True)
    )
    chunks = await service.stream({**_body(qwen), "stream": True})
    seen = ""
    async for chunk in chunks:
        seen += chunk.choices[0].delta.content or ""
        if "friend" in seen:
            break
    await chunks.aclose()  # type: ignore[attr-defined]
    assert seen.startswith("Hello there, friend.") and engine.finished == 0
    assert engine.closed_early == 1 and engine.aclose_calls == 1


async def test_a_stop_string_never_leaks(qwen: ServedModel, qwen_tokenizer: Tokenizer) -> None:
    text = "Tell me the secret: XYZZY is the word"
    for step in (1, 2, 3):
        service, _ = _service(qwen, qwen_tokenizer, Script(text, step=step))
        chunks = await _stream(service, _body(qwen, tools=None, stream=True, stop=["XYZZY"]))
        pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
        assert "".join(pieces) == "Tell me the secret: "
        assert not any("X" in piece for piece in pieces)


async def test_n_choices_interleave_by_index(qwen: ServedModel, qwen_tokenizer: Tokenizer) -> None:
    service, _ = _service(qwen, qwen_tokenizer, Script("first answer " * 5, step=1), "second")
    chunks = await _stream(service, _body(qwen, tools=None, n=2, stream=True))
    indices = [c["choices"][0]["index"] for c in chunks]
    assert indices[:2] == [0, 1] and all(c["choices"][0]["delta"]["role"] for c in chunks[:2])
    finishes = [c["choices"][0] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(f["index"] for f in finishes) == [0, 1]
    assert all(len(c["choices"]) == 1 for c in chunks)
    assert "usage" not in chunks[-1]


async def test_errors_before_the_first_token_raise_when_awaited(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, Script("", error=Overloaded("queue full")))
    with pytest.raises(ModelNotFound):
        await service.stream(_body(qwen, model="nope", stream=True))
    with pytest.raises(Overloaded):
        await service.stream(_body(qwen, stream=True))
    assert engine.aclose_calls == 1


async def test_errors_after_the_start_end_the_iterator(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    failing = Script("partial answer that goes on", step=1, error=Overloaded("gone"))
    service, engine = _service(qwen, qwen_tokenizer, failing)
    chunks = await service.stream(_body(qwen, tools=None, stream=True))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(Overloaded):
        async for chunk in chunks:
            received.append(chunk)
    assert received and engine.aclose_calls == 1


async def test_cancelling_the_consumer_cancels_the_generation(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, Script("a long answer " * 5, block=True))
    chunks = await service.stream(_body(qwen, stream=True, n=2))

    async def consume() -> None:
        async for _ in chunks:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (engine.aclose_calls, engine.closed_early, engine.finished) == (2, 2, 0)


NAMED = {"type": "function", "function": {"name": "get_current_weather"}}


async def test_forced_call_arguments_stream_while_generated(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    answer = ' {"location": "San Francisco, CA", "unit": "celsius"}}\n</tool_call>'
    script = Script(answer, step=1, block=True)  # blocks before its last token
    service, engine = _service(qwen, qwen_tokenizer, script)
    chunks = await service.stream(_body(qwen, tool_choice=NAMED, stream=True))
    parts: list[Any] = []
    async for chunk in chunks:
        parts += chunk.choices[0].delta.tool_calls or []
        if '"celsius"' in "".join(p.function.arguments or "" for p in parts):
            break
    await chunks.aclose()  # type: ignore[attr-defined]
    head = parts[0]
    assert (head.index, head.type, head.function.name) == (0, "function", "get_current_weather")
    assert head.id.startswith("call_") and all(p.id is None for p in parts[1:])
    streamed = "".join(p.function.arguments or "" for p in parts)
    assert streamed.startswith('{"location":"San Francisco, CA","unit":"celsius"')
    assert engine.finished == 0 and engine.closed_early == 1


async def test_a_forced_call_cut_by_max_tokens_ends_with_length(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    script = Script(' {"location": "San Fra', finish="length")
    service, _ = _service(qwen, qwen_tokenizer, script)
    body = _body(qwen, tool_choice=NAMED)
    completion = await _create(service, body)
    assert completion["choices"][0]["finish_reason"] == "length"
    streamed = _accumulate(await _stream(service, {**body, "stream": True}))
    (choice,) = streamed["choices"]
    # Streamed: the partial call (as OpenAI streams it), never its text again as content.
    assert choice["finish_reason"] == "length" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["arguments"] == '{"location":"San Fra'
