"""Translate between our protobuf messages and the service's types.

The gRPC face turns a request into the same JSON dict a REST client would send, so both faces
share one parser and one set of validation messages; typed responses and chunks become protos.
"""

from __future__ import annotations

import json
from typing import Any

from service.api.proto.fncall.v1 import chat_pb2
from service.chat_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Delta,
    ModelList,
    Usage,
)
from service.errors import InvalidRequest

_FINISH_REASONS = {
    "stop": chat_pb2.STOP,
    "length": chat_pb2.LENGTH,
    "tool_calls": chat_pb2.TOOL_CALLS,
}
_MODES = {
    chat_pb2.ToolChoice.NONE: "none",
    chat_pb2.ToolChoice.AUTO: "auto",
    chat_pb2.ToolChoice.REQUIRED: "required",
}


def _json_field(text: str, param: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{param} is not valid JSON: {exc.msg}", param=param) from None


def _message(msg: chat_pb2.Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": msg.role}
    out["content"] = msg.content if msg.HasField("content") else None
    if msg.name:
        out["name"] = msg.name
    if msg.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": call.type or "function",
                "function": {"name": call.function.name, "arguments": call.function.arguments},
            }
            for call in msg.tool_calls
        ]
    if msg.tool_call_id:
        out["tool_call_id"] = msg.tool_call_id
    return out


def _tool(tool: chat_pb2.Tool, index: int) -> dict[str, Any]:
    fn = tool.function
    function: dict[str, Any] = {"name": fn.name}
    if fn.description:
        function["description"] = fn.description
    if fn.parameters_json:
        param = f"tools[{index}].function.parameters"
        function["parameters"] = _json_field(fn.parameters_json, param)
    if fn.HasField("strict"):
        function["strict"] = fn.strict
    return {"type": tool.type or "function", "function": function}


def _tool_choice(choice: chat_pb2.ToolChoice) -> str | dict[str, Any] | None:
    which = choice.WhichOneof("choice")
    if which == "function_name":
        return {"type": "function", "function": {"name": choice.function_name}}
    if which == "mode" and choice.mode in _MODES:
        return _MODES[choice.mode]
    return None


def _response_format(fmt: chat_pb2.ResponseFormat) -> dict[str, Any]:
    out: dict[str, Any] = {"type": fmt.type}
    if fmt.json_schema_json:
        out["json_schema"] = _json_field(fmt.json_schema_json, "response_format.json_schema")
    return out


_OPTIONAL_SCALARS = (
    "parallel_tool_calls",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "n",
)


def request_to_openai(req: chat_pb2.ChatCompletionRequest) -> dict[str, Any]:
    """The OpenAI Chat Completions JSON body equivalent to ``req``."""
    body: dict[str, Any] = {
        "model": req.model,
        "messages": [_message(m) for m in req.messages],
    }
    if req.tools:
        body["tools"] = [_tool(t, i) for i, t in enumerate(req.tools)]
    if req.HasField("tool_choice") and (choice := _tool_choice(req.tool_choice)) is not None:
        body["tool_choice"] = choice
    for name in _OPTIONAL_SCALARS:
        if req.HasField(name):
            body[name] = getattr(req, name)
    if req.stop:
        body["stop"] = list(req.stop)
    if req.user:
        body["user"] = req.user
    if req.HasField("response_format") and req.response_format.type:
        body["response_format"] = _response_format(req.response_format)
    if req.HasField("stream_options"):
        body["stream_options"] = {"include_usage": req.stream_options.include_usage}
    return body


def completion_to_proto(completion: ChatCompletion) -> chat_pb2.ChatCompletion:
    """A ``ChatCompletion`` proto from the service's completion."""
    return chat_pb2.ChatCompletion(
        id=completion.id,
        object=completion.object,
        created=completion.created,
        model=completion.model,
        system_fingerprint=completion.system_fingerprint,
        usage=_usage(completion.usage),
        choices=[
            chat_pb2.Choice(
                index=choice.index,
                message=_message_to_proto(choice.message),
                finish_reason=_FINISH_REASONS[choice.finish_reason],
            )
            for choice in completion.choices
        ],
    )


def chunk_to_proto(chunk: ChatCompletionChunk) -> chat_pb2.ChatCompletionChunk:
    """A ``ChatCompletionChunk`` proto from the service's chunk."""
    out = chat_pb2.ChatCompletionChunk(
        id=chunk.id,
        object=chunk.object,
        created=chunk.created,
        model=chunk.model,
        system_fingerprint=chunk.system_fingerprint,
        choices=[
            chat_pb2.ChunkChoice(
                index=choice.index,
                delta=_delta_to_proto(choice.delta),
                finish_reason=_FINISH_REASONS[choice.finish_reason]
                if choice.finish_reason
                else chat_pb2.FINISH_REASON_UNSPECIFIED,
            )
            for choice in chunk.choices
        ],
    )
    if chunk.usage is not None:
        out.usage.CopyFrom(_usage(chunk.usage))
    return out


def models_to_proto(models: ModelList) -> chat_pb2.ListModelsResponse:
    """A ``ListModelsResponse`` from the service's model list."""
    return chat_pb2.ListModelsResponse(
        data=[
            chat_pb2.Model(id=m.id, object=m.object, created=m.created, owned_by=m.owned_by)
            for m in models.data
        ]
    )


def _usage(usage: Usage) -> chat_pb2.Usage:
    return chat_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def _message_to_proto(message: AssistantMessage) -> chat_pb2.Message:
    out = chat_pb2.Message(role=message.role)
    if message.content is not None:
        out.content = message.content
    for call in message.tool_calls or []:
        out.tool_calls.append(
            chat_pb2.ToolCall(
                id=call.id,
                type=call.type,
                function=chat_pb2.FunctionCall(
                    name=call.function.name, arguments=call.function.arguments
                ),
            )
        )
    return out


def _delta_to_proto(delta: Delta) -> chat_pb2.Delta:
    out = chat_pb2.Delta()
    if delta.role is not None:
        out.role = delta.role
    if delta.content is not None:
        out.content = delta.content
    for call in delta.tool_calls or []:
        part = chat_pb2.ToolCallDelta(index=call.index, id=call.id or "", type=call.type or "")
        if call.function is not None:
            part.function.name = call.function.name or ""
            part.function.arguments = call.function.arguments or ""
        out.tool_calls.append(part)
    return out
