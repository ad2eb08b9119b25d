"""The Response object: output items from a chat answer, and the request fields it echoes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from service.responses.request import FunctionChoice, ResponsesRequest

Status = Literal["in_progress", "completed", "incomplete", "failed"]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


def new_id(prefix: str) -> str:
    """An object id as OpenAI writes them: ``resp_…``, ``msg_…``, ``fc_…``."""
    return f"{prefix}_{uuid.uuid4().hex}"


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str | None, status: ItemStatus) -> dict[str, Any]:
    """An assistant ``message`` item (no content part yet when ``text`` is ``None``)."""
    content = [] if text is None else [text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: ItemStatus
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(message: Mapping[str, Any], finish_reason: str) -> list[dict[str, Any]]:
    """A chat completion's assistant message as output items: its text, then its calls."""
    status: ItemStatus = "incomplete" if finish_reason == "length" else "completed"
    items = []
    if message.get("content"):
        items.append(message_item(new_id("msg"), message["content"], status))
    for call in message.get("tool_calls") or []:
        function = call["function"]
        items.append(
            function_call_item(
                new_id("fc"), call["id"], function["name"], function["arguments"], "completed"
            )
        )
    return items


def assistant_message(output: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Output items as the one chat assistant message they answer (what a store keeps)."""
    texts = [
        part["text"] for item in output if item["type"] == "message" for part in item["content"]
    ]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in output
        if item["type"] == "function_call"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def usage_body(input_tokens: int, output_tokens: int, cached_tokens: int = 0) -> dict[str, Any]:
    """``cached_tokens``: input tokens served from the model's prefix cache."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": cached_tokens, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def usage_from_chat(usage: Mapping[str, Any]) -> dict[str, Any]:
    """A Responses ``usage`` from a Chat Completions one."""
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return usage_body(usage["prompt_tokens"], usage["completion_tokens"], cached)


def status_of(finish_reason: str | None) -> Status:
    return "incomplete" if finish_reason == "length" else "completed"


def response_body(
    request: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    status: Status,
    output: Sequence[Mapping[str, Any]] = (),
    usage: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The OpenAI ``response`` object, echoing the request's settings."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": dict(error) if error is not None else None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "model": request.model,
        "output": [dict(item) for item in output],
        "usage": dict(usage) if usage is not None else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "metadata": dict(request.metadata or {}),
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "store": request.store,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "text": {"format": _text_format(request)},
        "tool_choice": _tool_choice(request),
        "tools": [tool.model_dump() for tool in request.tools],
        "truncation": "disabled",
        "user": request.user,
    }


def _text_format(request: ResponsesRequest) -> dict[str, Any]:
    if request.text is None or request.text.format is None:
        return {"type": "text"}
    return request.text.format.model_dump(exclude_none=True, by_alias=True)


def _tool_choice(request: ResponsesRequest) -> str | dict[str, Any]:
    choice = request.tool_choice
    if isinstance(choice, FunctionChoice):
        return choice.model_dump()
    return choice if choice is not None else "auto"
