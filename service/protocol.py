"""OpenAI Chat Completions request models, their validation, and the response JSON.

Requests are hand-written pydantic models: OpenAI fields first, our extensions marked. Unknown
fields are ignored (and logged at debug), as OpenAI does. :func:`parse_request` turns every client
mistake into one :class:`InvalidRequest` naming the offending field path in ``param``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from service.errors import InvalidRequest
from service.generation import SamplingParams
from service.triton_contract import SAMPLING_DEFAULTS

logger = logging.getLogger(__name__)

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Limits enforced where values enter (both faces call ``parse_request``).
MAX_JSON_DEPTH = 64  # nesting of the whole body, tool schemas included
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
# Triton carries top_p as float32: a positive top_p below float32's range would arrive as 0.
_MIN_TOP_P = 1e-30


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TextPart(_Model):
    type: Literal["text"]
    text: str


Content = str | list[TextPart]


def content_text(content: Content | None) -> str | None:
    """A message's content as one string (text parts joined by newlines)."""
    if content is None or isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


class FunctionCall(_Model):
    name: str
    arguments: str  # a JSON object, as a string


class AssistantToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_Model):
    role: Literal["system"]
    content: Content
    name: str | None = None


class DeveloperMessage(_Model):
    role: Literal["developer"]  # OpenAI's newer name for system; rendered as system
    content: Content
    name: str | None = None


class UserMessage(_Model):
    role: Literal["user"]
    content: Content
    name: str | None = None


class AssistantMessage(_Model):
    role: Literal["assistant"]
    content: Content | None = None
    tool_calls: list[AssistantToolCall] | None = None
    name: str | None = None


class ToolMessage(_Model):
    role: Literal["tool"]
    content: Content
    tool_call_id: str


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


class FunctionDefinition(_Model):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema of type object
    strict: bool | None = None


class ToolDefinition(_Model):
    type: Literal["function"]
    function: FunctionDefinition

    def to_openai(self) -> dict[str, Any]:
        """The tool as an OpenAI function dict, as chat templates show it to the model.
        ``strict`` is left out: an API flag, not part of what the function does (the grammar
        applies strict arguments either way), and with it in the prompt the 0.5B model
        answered in text instead of calling in 6 of 20 seeded pydantic-ai runs."""
        function = self.function.model_dump(exclude_none=True, exclude={"strict"})
        return {"type": "function", "function": function}


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Model):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None

    @property
    def schema_dict(self) -> dict[str, Any]:
        """The ``json_schema`` answer's schema (any JSON value when it names none)."""
        schema = self.json_schema.schema_ if self.json_schema is not None else None
        return schema if schema is not None else {}


class StreamOptions(_Model):
    include_usage: bool = False


class ChatRequest(_Model):
    """One Chat Completions request."""

    model: str
    messages: list[Message]
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # Unset sampling fields take the model's recommended values, else OpenAI's defaults.
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=INT64_MIN, le=INT64_MAX)  # OpenAI's int64
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=8)
    user: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    # Extensions (not in OpenAI's API):
    top_k: int | None = Field(default=None, ge=0, le=INT32_MAX)  # 0: no top-k cut

    @property
    def effective_tool_choice(self) -> str | NamedToolChoice:
        """``tool_choice`` with OpenAI's default: ``auto`` with tools, ``none`` without."""
        if self.tool_choice is not None:
            return self.tool_choice
        return "auto" if self.tools else "none"

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_strings(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [stop for stop in stops if stop]

    def to_sampling_params(
        self,
        *,
        max_tokens: int,
        stop_token_ids: Sequence[int],
        defaults: Mapping[str, float] | None = None,
        choice: int = 0,
        grammar: str | None = None,
        grammar_prefill_tokens: int = 0,
    ) -> SamplingParams:
        """Engine parameters for choice ``choice`` (seeds are ``seed + choice`` modulo 2**63,
        the engine's non-negative int64); sampling fields the request leaves out come from
        ``defaults`` (the model card's), then OpenAI's."""
        defaults = defaults or {}
        fallback = SAMPLING_DEFAULTS

        def pick(value: float | None, name: str, fallback: float) -> float:
            return value if value is not None else defaults.get(name, fallback)

        return SamplingParams(
            max_tokens=max_tokens,
            temperature=float(pick(self.temperature, "temperature", fallback.temperature)),
            top_p=max(float(pick(self.top_p, "top_p", fallback.top_p)), _MIN_TOP_P),
            top_k=int(pick(self.top_k, "top_k", fallback.top_k)),
            seed=None if self.seed is None else (self.seed + choice) % 2**63,
            stop_token_ids=tuple(stop_token_ids),
            grammar=grammar,
            grammar_prefill_tokens=grammar_prefill_tokens if grammar else 0,
        )


def parse_request(body: Any) -> ChatRequest:
    """Validate a decoded JSON body; every client mistake is one ``InvalidRequest``."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    check_json_value(body)
    ignored = sorted(set(body) - set(ChatRequest.model_fields))
    if ignored:
        logger.debug("ignoring unknown request fields: %s", ", ".join(map(str, ignored)))
    try:
        request = ChatRequest.model_validate(dict(body))
    except ValidationError as exc:
        raise _invalid(exc, body) from None
    _check_request(request)
    return request


def check_json_value(value: Any, max_depth: int = MAX_JSON_DEPTH) -> None:
    """``InvalidRequest`` naming the path of the first value nested deeper than ``max_depth``
    or of a string that is not valid Unicode (a lone surrogate such as ``"\\ud800"``).

    Iterative, so a hostile body cannot exhaust the stack of anything that walks it later
    (validation, schema checks, templates)."""
    stack: list[tuple[Any, int, _Path | None]] = [(value, 0, None)]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if not _is_unicode(item):
                raise _field(_render(path), "the text is not valid Unicode (a lone surrogate).")
            continue
        if not isinstance(item, (Mapping, list)):
            continue
        if depth >= max_depth:
            raise _field(_render(path), f"nested deeper than {max_depth} levels.")
        if isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str) and not _is_unicode(key):
                    raise _field(_render(path), "a key is not valid Unicode (a lone surrogate).")
                stack.append((child, depth + 1, (key, path)))
        else:
            stack.extend((child, depth + 1, (i, path)) for i, child in enumerate(item))


_Path = tuple[Any, Any]  # (key, parent path): built in O(1) per value, rendered on error only


def _render(path: _Path | None) -> str:
    keys: list[Any] = []
    while path is not None:
        key, path = path
        keys.append(key)
    text = ""
    for key in reversed(keys[-8:]):  # the field and a few levels in, not a 64-level path
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text or "body"


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _invalid(exc: ValidationError, body: Mapping[str, Any]) -> InvalidRequest:
    """The most specific pydantic error as one readable ``InvalidRequest``."""
    error = max(exc.errors(), key=lambda e: len(e["loc"]))
    param = _param_path(error, body)
    if error["type"] in ("missing", "union_tag_not_found"):
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param)
    return _field(param, f"{error['msg']}.")


def _field(param: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid value for '{param}': {problem}", param=param)


def _param_path(error: ErrorDetails, body: Any) -> str:
    """``messages[1].content`` from a pydantic ``loc``, skipping union-member tags."""
    path, value = "", body
    for index, key in enumerate(error["loc"]):
        if isinstance(key, int) and isinstance(value, list) and key < len(value):
            path, value = f"{path}[{key}]", value[key]
        elif isinstance(value, Mapping) and (key in value or index == len(error["loc"]) - 1):
            path, value = f"{path}.{key}" if path else str(key), value.get(str(key))
    if error["type"].startswith("union_tag"):
        path += ".role" if path.startswith("messages") else ".type"
    return path


def _check_request(request: ChatRequest) -> None:
    if request.stream_options is not None and not request.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    response_format = request.response_format
    if response_format and response_format.type == "json_schema":
        if response_format.json_schema is None:
            raise InvalidRequest(
                "Missing required parameter: 'response_format.json_schema'.",
                param="response_format.json_schema",
            )
        if response_format.json_schema.schema_ is not None:
            _check_schema(response_format.json_schema.schema_, "response_format.json_schema.schema")
    if not request.messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    if isinstance(request.stop, list) and len(request.stop) > 4:
        raise InvalidRequest("'stop' may hold at most 4 sequences.", param="stop")
    _check_tools(request.tools or [])
    _check_tool_choice(request)
    _check_messages(request.messages)


def _check_tools(tools: Sequence[ToolDefinition]) -> None:
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        name, param = tool.function.name, f"tools[{index}].function"
        if not _TOOL_NAME.match(name):
            raise _field(f"{param}.name", f"{name!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$.")
        if name in seen:
            raise _field(f"{param}.name", f"the tool name {name!r} is used twice.")
        seen.add(name)
        if tool.function.parameters is not None:
            _check_parameters(tool.function.parameters, f"{param}.parameters")


def _check_schema(schema: dict[str, Any], param: str) -> None:
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        raise _field(f"{param}.$schema", "must be a string (a JSON Schema dialect URI).")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise _field(param, f"not a valid JSON Schema: {exc.message}.") from None
    except jsonschema.exceptions.UnknownType as exc:
        raise _field(param, f"not a valid JSON Schema: {exc}.") from None


def _check_parameters(schema: dict[str, Any], param: str) -> None:
    _check_schema(schema, param)
    if schema.get("type", "object") != "object":
        raise _field(param, "the schema must have type 'object'.")


def _check_tool_choice(request: ChatRequest) -> None:
    choice = request.tool_choice
    if choice in (None, "none", "auto"):
        return
    if not request.tools:
        raise InvalidRequest(
            "'tool_choice' requires 'tools' unless it is 'none' or 'auto'.", param="tool_choice"
        )
    if isinstance(choice, NamedToolChoice):
        names = {tool.function.name for tool in request.tools}
        if choice.function.name not in names:
            raise _field(
                "tool_choice.function.name", f"no tool named {choice.function.name!r} in 'tools'."
            )


def _check_messages(messages: Sequence[Message]) -> None:
    call_ids: set[str] = set()
    for index, message in enumerate(messages):
        if isinstance(message, AssistantMessage):
            if message.content is None and not message.tool_calls:
                raise _field(
                    f"messages[{index}].content",
                    "an assistant message needs content or tool_calls.",
                )
            for number, call in enumerate(message.tool_calls or []):
                _check_arguments(call, f"messages[{index}].tool_calls[{number}]")
                call_ids.add(call.id)
        elif isinstance(message, ToolMessage) and message.tool_call_id not in call_ids:
            raise _field(
                f"messages[{index}].tool_call_id",
                f"{message.tool_call_id!r} matches no earlier assistant tool call.",
            )


def _check_arguments(call: AssistantToolCall, param: str) -> None:
    try:
        arguments = json.loads(call.function.arguments)
    except json.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise _field(f"{param}.function.arguments", "must be a JSON object encoded as a string.")
