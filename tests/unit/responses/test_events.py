"""Chat completion chunks → Responses stream events, over fake chunk sequences."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from service.errors import Unavailable
from service.responses.events import ResponseEvents, response_events
from service.responses.output import assistant_message
from service.responses.request import parse_request
from tests.unit.responses.wire import sdk_event, sdk_response


def _chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": choices,
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _call(
    index: int, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
        call["function"]["name"] = name
    return call


USAGE = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
TEXT_CHUNKS = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "It is "}),
    _chunk({"content": "60 degrees."}),
    _chunk({}, "stop"),
    _chunk(usage=USAGE),
]
CALL_CHUNKS = [
    _chunk({"role": "assistant", "content": "Checking."}),
    _chunk({"tool_calls": [_call(0, "call_a", "w", '{"loc')]}),
    _chunk({"tool_calls": [_call(0, arguments='": "SF"}')]}),
    _chunk({"tool_calls": [_call(1, "call_b", "w", '{"loc": "Paris"}')]}),
    _chunk({}, "tool_calls"),
    _chunk(usage=USAGE),
]


async def _replay(
    chunks: list[dict[str, Any]], error: Exception | None = None
) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk
    if error is not None:
        raise error


async def _events(
    chunks: list[dict[str, Any]], error: Exception | None = None, **fields: Any
) -> tuple[list[dict[str, Any]], ResponseEvents]:
    request = parse_request({"model": "m", "input": "x", "stream": True, **fields})
    state = ResponseEvents(request, "resp_1", 1)
    events = [event async for event in response_events(state, _replay(chunks, error))]
    for event in events:
        sdk_event(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events, state


async def test_text_stream() -> None:
    events, _ = await _events(TEXT_CHUNKS)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )
    assert [e["delta"] for e in events if e["type"].endswith(".delta")] == ["It is ", "60 degrees."]
    done = events[6]
    assert done["text"] == "It is 60 degrees." and done["item_id"] == events[2]["item"]["id"]
    final = sdk_response(events[-1]["response"])
    assert final.output_text == "It is 60 degrees." and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens == 9


async def test_text_then_two_calls() -> None:
    events, state = await _events(CALL_CHUNKS)
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(i["type"], i["status"]) for i in added] == [
        ("message", "in_progress"),
        ("function_call", "in_progress"),
        ("function_call", "in_progress"),
    ]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [
        0,
        1,
        2,
    ]
    assert (
        added[1]["call_id"] == "call_a" and added[1]["name"] == "w" and added[1]["arguments"] == ""
    )
    argument_deltas = [
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    ]
    assert argument_deltas == ['{"loc', '": "SF"}', '{"loc": "Paris"}']
    arguments_done = [
        e["arguments"] for e in events if e["type"] == "response.function_call_arguments.done"
    ]
    assert arguments_done == ['{"loc": "SF"}', '{"loc": "Paris"}']
    final = sdk_response(events[-1]["response"])
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert [item.id for item in final.output] == [item["id"] for item in added]
    assert all(item.status == "completed" for item in final.output)
    assert assistant_message(state.response["output"])["tool_calls"][1]["function"] == {
        "name": "w",
        "arguments": '{"loc": "Paris"}',
    }


async def test_cut_off_stream_ends_incomplete() -> None:
    events, _ = await _events(
        [_chunk({"content": "Once upon"}), _chunk({}, "length"), _chunk(usage=USAGE)]
    )
    assert events[-1]["type"] == "response.incomplete"
    item_done = [e for e in events if e["type"] == "response.output_item.done"]
    assert item_done[0]["item"]["status"] == "incomplete"
    final = sdk_response(events[-1]["response"])
    assert (
        final.incomplete_details is not None
        and final.incomplete_details.reason == "max_output_tokens"
    )


async def test_error_mid_stream_ends_with_response_failed() -> None:
    events, _ = await _events(TEXT_CHUNKS[:2], Unavailable("Triton went away"))
    assert events[-1]["type"] == "response.failed"
    final = sdk_response(events[-1]["response"])
    assert final.status == "failed" and final.error is not None
    assert (final.error.code, final.error.message) == ("server_error", "Triton went away")


async def test_a_server_bug_mid_stream_ends_with_response_failed_without_internals() -> None:
    events, _ = await _events(TEXT_CHUNKS[:2], RuntimeError("secret internals"))
    final = sdk_response(events[-1]["response"])
    assert events[-1]["type"] == "response.failed" and final.error is not None
    assert final.error.code == "server_error" and "secret" not in final.error.message


async def test_closing_the_events_closes_the_chunks() -> None:
    closed = []

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            for chunk in TEXT_CHUNKS:
                yield chunk
        finally:
            closed.append(True)

    request = parse_request({"model": "m", "input": "x"})
    stream = response_events(ResponseEvents(request, "resp_1", 1), chunks())
    async for event in stream:
        if event["type"] == "response.output_text.delta":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
