"""ResponsesService over a scripted chat service and over the real ChatService."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from service.chat import ChatService
from service.errors import InvalidRequest
from service.models import ModelRegistry
from service.responses.service import ResponsesService
from service.responses.store import ResponseStore
from tests.seed import WEATHER_TOOL
from tests.unit.api.fake_chat import COMPLETION
from tests.unit.responses.fakes import ScriptedChat, chat_chunk
from tests.unit.responses.wire import sdk_response
from tests.unit.served import REPOSITORY, served_model

TOOL = {"type": "function", **WEATHER_TOOL["function"]}


def _text_completion(text: str) -> dict[str, Any]:
    completion = copy.deepcopy(COMPLETION)
    completion["choices"][0].update(
        message={"role": "assistant", "content": text}, finish_reason="stop"
    )
    return completion


async def test_previous_response_id_replays_the_conversation_without_instructions() -> None:
    chat = ScriptedChat(COMPLETION, _text_completion("60 degrees"))
    service = ResponsesService(chat, ResponseStore())
    first = await service.create(
        {"model": "m", "instructions": "Be brief.", "input": "Weather?", "tools": [TOOL]}
    )
    (call,) = first["output"]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "60"}
    second = await service.create(
        {"model": "m", "previous_response_id": first["id"], "input": [output]}
    )
    assert chat.bodies[1]["messages"] == [
        {"role": "user", "content": "Weather?"},
        COMPLETION["choices"][0]["message"],
        {"role": "tool", "tool_call_id": "call_x", "content": "60"},
    ]
    assert sdk_response(second).output_text == "60 degrees"
    assert second["previous_response_id"] == first["id"]
    assert service.get(second["id"]) == second


async def test_store_false_keeps_nothing_and_unknown_ids_are_400() -> None:
    service = ResponsesService(ScriptedChat(), ResponseStore())
    first = await service.create({"model": "m", "input": "hi", "store": False})
    with pytest.raises(InvalidRequest) as caught:
        await service.create({"model": "m", "input": "x", "previous_response_id": first["id"]})
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"
    assert caught.value.message == f"Previous response with id '{first['id']}' not found."
    with pytest.raises(Exception, match="not found"):
        service.get(first["id"])


async def test_chat_errors_name_responses_fields() -> None:
    chat = ScriptedChat()
    chat.error = InvalidRequest(
        "Invalid value for 'tools[0].function.parameters': bad.",
        param="tools[0].function.parameters",
    )
    service = ResponsesService(chat, ResponseStore())
    with pytest.raises(InvalidRequest) as caught:
        await service.create({"model": "m", "input": "x", "tools": [TOOL]})
    assert caught.value.param == "tools[0].parameters"
    assert caught.value.message == "Invalid value for 'tools[0].parameters': bad."


async def test_streamed_response_is_stored_when_complete() -> None:
    call = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "w", "arguments": "{}"},
    }
    usage = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    chunks = [
        chat_chunk({"tool_calls": [call]}),
        chat_chunk({}, "tool_calls"),
        chat_chunk(None, usage=usage),
    ]
    streams = ScriptedChat(chunks=chunks)
    store = ResponseStore()
    service = ResponsesService(streams, store)
    events = await service.stream({"model": "m", "input": "x", "tools": [TOOL], "stream": True})
    collected = [event async for event in events]
    assert streams.bodies[0]["stream"] is True
    assert streams.bodies[0]["stream_options"] == {"include_usage": True}
    final = collected[-1]["response"]
    assert collected[-1]["type"] == "response.completed" and final["usage"]["total_tokens"] == 6
    stored = store.get(final["id"])
    assert stored is not None and stored.response == final
    assert stored.conversation[-1]["tool_calls"][0]["id"] == "call_1"


async def test_stream_validation_errors_raise_before_any_event() -> None:
    streams = ScriptedChat()
    streams.error = InvalidRequest(
        "Invalid value for 'max_completion_tokens': no.", param="max_completion_tokens"
    )
    service = ResponsesService(streams, ResponseStore())
    with pytest.raises(InvalidRequest) as caught:
        await service.stream({"model": "m", "input": "x", "stream": True})
    assert caught.value.param == "max_output_tokens"
    with pytest.raises(InvalidRequest) as caught:
        await service.stream({"model": "m", "input": "x", "previous_response_id": "resp_x"})
    assert caught.value.code == "previous_response_not_found"


async def test_over_the_real_chat_service() -> None:
    """The translated body passes the chat pipeline's own validation and parsing."""
    from tokenizers import Tokenizer

    from tests.unit.test_chat import FakeEngine, Script

    model = served_model("llm")
    tokenizer = Tokenizer.from_file(str(REPOSITORY / "llm" / "1" / "tokenizer.json"))
    call = '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "SF"}}'
    engine = FakeEngine(tokenizer, [Script(call), Script("It is 60 degrees.")])
    service = ResponsesService(ChatService(ModelRegistry([model]), engine), ResponseStore())
    first = sdk_response(
        await service.create({"model": model.id, "input": "Weather in SF?", "tools": [TOOL]})
    )
    (item,) = first.output
    assert item.type == "function_call" and json.loads(item.arguments) == {"location": "SF"}
    output = {"type": "function_call_output", "call_id": item.call_id, "output": "60"}
    second = sdk_response(
        await service.create(
            {"model": model.id, "previous_response_id": first.id, "input": [output]}
        )
    )
    assert second.output_text == "It is 60 degrees."
    assert second.usage is not None and second.usage.input_tokens == len(engine.requests[1][1])
    with pytest.raises(InvalidRequest) as caught:
        await service.create({"model": model.id, "input": [{**output, "call_id": "call_nope"}]})
    assert caught.value.param == "input[0].call_id"
