"""A Responses API request: its validation and its translation into a Chat Completions body.

Only function tools and text are served; every built-in tool, input item, content part or
parameter this server cannot honour is a 400 naming it, never a silent drop. Errors the chat
pipeline raises about the translated body are renamed back to the Responses fields
(:class:`ParamMap`), so ``param`` always names what the client sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.errors import InvalidRequest

logger = logging.getLogger(__name__)

# Parameters accepted but without effect here (hints for OpenAI's own infrastructure).
_HINTS = frozenset(
    {
        "max_tool_calls",  # bounds built-in tool calls; there are none
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "stream_options",
    }
)
# Include values that are trivially honoured: this server returns no reasoning items.
_HONOURED_INCLUDES = frozenset({"reasoning.encrypted_content"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FunctionTool(_Model):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    def to_chat(self) -> dict[str, Any]:
        """The Chat Completions tool (``function`` nested)."""
        function = self.model_dump(exclude_none=True, exclude={"type"})
        return {"type": "function", "function": function}


class FunctionChoice(_Model):
    type: Literal["function"]
    name: str


class TextFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None

    def to_chat(self) -> dict[str, Any] | None:
        """The Chat Completions ``response_format`` (``None`` for plain text)."""
        if self.type == "text":
            return None
        if self.type == "json_object":
            return {"type": "json_object"}
        if self.name is None:
            raise InvalidRequest(
                "Missing required parameter: 'text.format.name'.", param="text.format.name"
            )
        schema = self.model_dump(exclude_none=True, exclude={"type"}, by_alias=True)
        return {"type": "json_schema", "json_schema": schema}


class TextConfig(_Model):
    format: TextFormat | None = None


class ResponsesRequest(_Model):
    """The fields of ``POST /v1/responses`` this server reads (items stay raw until translated)."""

    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[FunctionTool] = []
    tool_choice: Literal["none", "auto", "required"] | FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: TextConfig | None = None
    metadata: dict[str, str] | None = None
    store: bool = True
    stream: bool = False
    previous_response_id: str | None = None
    user: str | None = None
    truncation: Literal["auto", "disabled"] | None = None


def parse_request(body: Any) -> ResponsesRequest:
    """Validate a decoded JSON body; every client mistake is one ``InvalidRequest``."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    _refuse_unsupported(body)
    ignored = sorted(set(body) - set(ResponsesRequest.model_fields) - _HINTS - {"include"})
    if ignored:
        logger.debug("ignoring unknown request fields: %s", ", ".join(map(str, ignored)))
    try:
        request = ResponsesRequest.model_validate(dict(body))
    except ValidationError as exc:
        raise _invalid(exc, body) from None
    if request.truncation == "auto":
        raise _unsupported("truncation", "'truncation': 'auto' is not supported; omit it")
    if request.metadata is not None and len(request.metadata) > 16:
        raise _field("metadata", "at most 16 key-value pairs.")
    return request


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    """A 400 naming the first parameter, tool or tool choice this server cannot honour."""
    for name in ("background", "conversation", "prompt", "reasoning", "context_management"):
        if _is_set(body.get(name)):
            raise _unsupported(name, f"'{name}' is not supported by this server")
    if _is_set(body.get("top_logprobs")):
        raise _unsupported("top_logprobs", "logprobs are not supported by this server")
    include = body.get("include") or []
    if isinstance(include, list) and set(map(str, include)) - _HONOURED_INCLUDES:
        values = ", ".join(sorted(set(map(str, include)) - _HONOURED_INCLUDES))
        raise _unsupported("include", f"'include' values are not supported: {values}")
    tools = body.get("tools")
    for index, tool in enumerate(tools if isinstance(tools, list) else []):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if isinstance(kind, str) and kind != "function":
            raise _unsupported(
                f"tools[{index}].type",
                f"the tool type {kind!r} is not supported; only 'function' tools are",
                "unsupported_value",
            )
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") != "function":
        raise _unsupported(
            "tool_choice.type",
            f"tool_choice of type {choice.get('type')!r} is not supported; use 'none', 'auto', "
            "'required' or {'type': 'function', 'name': ...}",
            "unsupported_value",
        )


def _is_set(value: Any) -> bool:
    """Whether a parameter asks for something (``{"effort": null}`` asks for nothing)."""
    if isinstance(value, Mapping):
        return any(_is_set(item) for item in value.values())
    return bool(value)


def _unsupported(param: str, problem: str, code: str = "unsupported_parameter") -> InvalidRequest:
    return InvalidRequest(f"Unsupported: {problem}.", param=param, code=code)


def _field(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {problem}", param=param)


def _invalid(exc: ValidationError, body: Any, prefix: str = "") -> InvalidRequest:
    """The most specific pydantic error as one ``InvalidRequest`` naming its field path
    (``loc`` entries that are no keys of ``body``, such as union member tags, are skipped)."""
    error = max(exc.errors(), key=lambda e: len(e["loc"]))
    param, value = prefix, body
    for position, key in enumerate(error["loc"]):
        last = position == len(error["loc"]) - 1
        if isinstance(key, int) and isinstance(value, list) and key < len(value):
            param, value = f"{param}[{key}]", value[key]
        elif isinstance(value, Mapping) and isinstance(key, str) and (key in value or last):
            param, value = f"{param}.{key}" if param else key, value.get(key)
    if error["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return _field(param, f"{error['msg']}.")


# --- input items ------------------------------------------------------------------------------


class _TextPart(_Model):
    type: Literal["input_text", "output_text", "refusal"]
    text: str = ""
    refusal: str = ""

    @property
    def value(self) -> str:
        return self.refusal if self.type == "refusal" else self.text


class _MessageItem(_Model):
    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | list[_TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.value for part in self.content)


class _FunctionCallItem(_Model):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class _FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[_TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.output, str):
            return self.output
        return "\n".join(part.value for part in self.output)


_ITEMS: dict[str, type[_Model]] = {
    "message": _MessageItem,
    "function_call": _FunctionCallItem,
    "function_call_output": _FunctionCallOutputItem,
}
_TEXT_PARTS = ("input_text", "output_text", "refusal")
_SKIPPED_ITEMS = ("reasoning",)  # hidden model state; this server neither makes nor reads it


@dataclass
class ParamMap:
    """Renames the ``param`` of a chat pipeline error into the Responses field it came from."""

    prefixes: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, chat: str, responses: str, *, whole: bool = False) -> None:
        """Rename ``chat`` (and paths below it, unless ``whole``: then all of them become
        just ``responses``)."""
        self.prefixes.append((chat, responses, whole))

    def rename(self, error: InvalidRequest) -> InvalidRequest:
        """``error`` with its ``param`` (and the quoted name in its message) renamed."""
        if error.param is None:
            return error
        param = self._rename(error.param)
        message = error.message.replace(f"'{error.param}'", f"'{param}'")
        return InvalidRequest(message, param=param, code=error.code)

    def _rename(self, param: str) -> str:
        best: tuple[str, str, bool] | None = None
        for entry in self.prefixes:
            if re.match(re.escape(entry[0]) + r"(?=$|[.\[])", param) and (
                best is None or len(entry[0]) > len(best[0])
            ):
                best = entry
        if best is None:
            return param
        chat, responses, whole = best
        return responses if whole else responses + param[len(chat) :]


def _parse_item(raw: Any, index: int) -> _Model | None:
    """One input item (``None`` for a skipped one); unsupported types are a 400 naming them."""
    param = f"input[{index}]"
    if not isinstance(raw, Mapping):
        raise _field(param, "an input item must be an object.")
    kind = raw.get("type", "message")
    if kind in _SKIPPED_ITEMS:
        logger.debug("skipping a %r input item", kind)
        return None
    model = _ITEMS.get(str(kind))
    if model is None:
        raise _unsupported(
            f"{param}.type", f"input items of type {kind!r} are not supported", "unsupported_value"
        )
    content = raw.get("content") if kind == "message" else raw.get("output")
    for number, part in enumerate(content if isinstance(content, list) else []):
        part_type = part.get("type") if isinstance(part, Mapping) else None
        if isinstance(part_type, str) and part_type not in _TEXT_PARTS:
            field_name = "content" if kind == "message" else "output"
            raise _unsupported(
                f"{param}.{field_name}[{number}].type",
                f"content of type {part_type!r} is not supported; only text is",
                "unsupported_value",
            )
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        raise _invalid(exc, raw, param) from None


@dataclass
class ChatTranslation:
    """A Chat Completions body, the conversation it carries, and how to rename its errors."""

    body: dict[str, Any]
    conversation: list[dict[str, Any]]  # the messages without the instructions (to store)
    params: ParamMap


def to_chat(request: ResponsesRequest, history: Sequence[Mapping[str, Any]]) -> ChatTranslation:
    """The Chat Completions body for ``request`` after the stored ``history`` messages."""
    params = _global_params(request)
    messages: list[dict[str, Any]] = []
    if request.instructions is not None:
        params.add("messages[0]", "instructions", whole=True)
        messages.append({"role": "system", "content": request.instructions})
    for message in history:
        params.add(f"messages[{len(messages)}]", "previous_response_id", whole=True)
        messages.append(dict(message))
    first_new = len(messages)
    _append_input(request, messages, params)
    conversation = messages[1:] if request.instructions is not None else messages
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    _copy_generation_fields(request, body)
    logger.debug("translated %d new input messages", len(messages) - first_new)
    return ChatTranslation(body, conversation, params)


def _global_params(request: ResponsesRequest) -> ParamMap:
    params = ParamMap()
    for chat, responses in (
        ("messages", "input"),
        ("max_completion_tokens", "max_output_tokens"),
        ("response_format", "text.format"),
        ("response_format.json_schema", "text.format"),
        ("tool_choice.function", "tool_choice"),
    ):
        params.add(chat, responses)
    for index in range(len(request.tools)):
        params.add(f"tools[{index}].function", f"tools[{index}]")
    return params


def _append_input(
    request: ResponsesRequest, messages: list[dict[str, Any]], params: ParamMap
) -> None:
    """Input items as chat messages: calls join the assistant turn they follow."""
    raw_items: list[Any] = (
        [{"role": "user", "content": request.input}]
        if isinstance(request.input, str)
        else request.input
    )
    previous: _Model | None = None
    for index, raw in enumerate(raw_items):
        item = _parse_item(raw, index)
        if item is None:
            continue
        at = f"messages[{len(messages)}]"
        if isinstance(item, _FunctionCallItem):
            turn = messages[-1] if messages and _joins_turn(previous) else None
            if turn is None:
                params.add(at, f"input[{index}]")
                turn = {"role": "assistant", "content": None, "tool_calls": []}
                messages.append(turn)
            number = len(turn.setdefault("tool_calls", []))
            params.add(f"{_turn_path(messages)}.tool_calls[{number}].function", f"input[{index}]")
            function = {"name": item.name, "arguments": item.arguments}
            turn["tool_calls"].append(
                {"id": item.call_id, "type": "function", "function": function}
            )
        elif isinstance(item, _FunctionCallOutputItem):
            params.add(f"{at}.tool_call_id", f"input[{index}].call_id")
            params.add(f"{at}.content", f"input[{index}].output")
            params.add(at, f"input[{index}]")
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.text})
        elif isinstance(item, _MessageItem):
            params.add(at, f"input[{index}]")
            messages.append({"role": item.role, "content": item.text})
        previous = item


def _joins_turn(previous: _Model | None) -> bool:
    """Whether a function call continues the assistant turn of the item before it."""
    if isinstance(previous, _FunctionCallItem):
        return True
    return isinstance(previous, _MessageItem) and previous.role == "assistant"


def _turn_path(messages: list[dict[str, Any]]) -> str:
    return f"messages[{len(messages) - 1}]"


def _copy_generation_fields(request: ResponsesRequest, body: dict[str, Any]) -> None:
    """Tools, choices, sampling and format: the allow-listed fields, renamed."""
    if request.tools:
        body["tools"] = [tool.to_chat() for tool in request.tools]
    choice = request.tool_choice
    if isinstance(choice, FunctionChoice):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        body["tool_choice"] = choice
    response_format = (
        request.text.format.to_chat() if request.text and request.text.format else None
    )
    optional = {
        "parallel_tool_calls": request.parallel_tool_calls,
        "max_completion_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "response_format": response_format,
        "user": request.user,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
