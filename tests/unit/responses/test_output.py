"""Chat answer → Response object (output items, status, usage, echoed settings)."""

from __future__ import annotations

from typing import Any

from service.responses.output import (
    assistant_message,
    output_items,
    response_body,
    usage_body,
    usage_from_chat,
)
from service.responses.request import parse_request
from tests.unit.responses.wire import sdk_response

CALL = {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": '{"a": 1}'}}


def _response(message: dict[str, Any], finish: str, **fields: Any) -> dict[str, Any]:
    request = parse_request({"model": "m", "input": "x", **fields})
    return response_body(
        request,
        response_id="resp_1",
        created_at=1,
        status="incomplete" if finish == "length" else "completed",
        output=output_items(message, finish),
        usage=usage_body(7, 3),
    )


def test_text_and_calls_become_message_and_function_call_items() -> None:
    body = _response(
        {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]}, "tool_calls"
    )
    response = sdk_response(body)
    message, call = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.status == "completed" and response.output_text == "Let me check."
    assert call.type == "function_call" and call.id is not None and call.id.startswith("fc_")
    assert (call.call_id, call.name, call.arguments) == ("call_1", "w", '{"a": 1}')
    assert response.status == "completed" and response.incomplete_details is None
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (7, 3)
    assert response.usage.total_tokens == 10


def test_only_calls_give_no_message_item() -> None:
    body = _response({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls")
    assert [item["type"] for item in body["output"]] == ["function_call"]


def test_cut_off_answer_is_incomplete() -> None:
    response = sdk_response(_response({"role": "assistant", "content": "Once upon"}, "length"))
    assert response.status == "incomplete" and response.output[0].status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_settings_are_echoed() -> None:
    tool = {"type": "function", "name": "w", "parameters": {"type": "object"}, "strict": True}
    body = _response(
        {"role": "assistant", "content": "{}"},
        "stop",
        instructions="sys",
        tools=[tool],
        tool_choice={"type": "function", "name": "w"},
        metadata={"k": "v"},
        temperature=0.2,
        max_output_tokens=9,
        parallel_tool_calls=False,
        store=False,
        text={"format": {"type": "json_object"}},
    )
    response = sdk_response(body)
    assert response.instructions == "sys" and response.metadata == {"k": "v"}
    assert response.tools[0].name == "w" and response.tool_choice.name == "w"  # type: ignore[union-attr]
    assert (response.temperature, response.max_output_tokens) == (0.2, 9)
    assert response.parallel_tool_calls is False and body["store"] is False
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_object"


def test_defaults_are_echoed_as_openai_does() -> None:
    response = sdk_response(_response({"role": "assistant", "content": "hi"}, "stop"))
    assert response.tool_choice == "auto" and response.parallel_tool_calls is True
    assert response.tools == [] and response.metadata == {}
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "text"


def test_output_items_turn_back_into_one_assistant_message() -> None:
    message = {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]}
    assert assistant_message(output_items(message, "tool_calls")) == message
    text_only = {"role": "assistant", "content": "hi"}
    assert assistant_message(output_items(text_only, "stop")) == text_only


def test_usage_from_chat_keeps_the_prefix_cache_hits() -> None:
    details = {"cached_tokens": 7}
    chat = {"prompt_tokens": 9, "completion_tokens": 2, "prompt_tokens_details": details}
    usage = usage_from_chat(chat)
    assert usage["input_tokens_details"]["cached_tokens"] == 7
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (9, 2, 11)
    assert usage_from_chat({"prompt_tokens": 1, "completion_tokens": 1}) == usage_body(1, 1)
