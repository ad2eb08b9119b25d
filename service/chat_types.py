"""The typed seam between ``ChatService`` and its faces: completions, chunks, the backend Protocol.

Each top-level object's :meth:`to_openai` is exactly OpenAI's JSON (``chat.completion``,
``chat.completion.chunk``, ``/v1/models``): in a completion, ``content`` and ``logprobs`` are
written even when null and ``tool_calls`` only when there are some; in a chunk, a delta carries
only the fields it sets, and ``finish_reason`` / ``logprobs`` are written as null until set.
Faces translate these objects, and fakes of the service (tests) implement :class:`ChatBackend`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict

FinishReason = Literal["stop", "length", "tool_calls"]


class _Typed(BaseModel):
    model_config = ConfigDict(frozen=True)


class FunctionCall(_Typed):
    name: str
    arguments: str  # a JSON object, as a string


class ToolCall(_Typed):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(_Typed):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Typed):
    index: int
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class PromptTokensDetails(_Typed):
    cached_tokens: int = 0  # prompt tokens served from the model's prefix cache


class Usage(_Typed):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()


class ChatCompletion(_Typed):
    """A ``chat.completion``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str

    def to_openai(self) -> dict[str, Any]:
        body = self.model_dump()
        for choice in body["choices"]:
            if not choice["message"]["tool_calls"]:
                del choice["message"]["tool_calls"]
        return body


class FunctionDelta(_Typed):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Typed):
    """Part of call ``index``: its first delta has ``id``, ``type`` and the name, then
    arguments follow in pieces."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta | None = None


class Delta(_Typed):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(_Typed):
    index: int
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(_Typed):
    """A ``chat.completion.chunk``; the usage chunk has no choices."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChunkChoice]
    usage: Usage | None = None

    def to_openai(self) -> dict[str, Any]:
        body = self.model_dump(exclude={"usage", "choices"})
        body["choices"] = [
            {
                "index": choice.index,
                "delta": choice.delta.model_dump(exclude_none=True),
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for choice in self.choices
        ]
        if self.usage is not None:
            body["usage"] = self.usage.model_dump()
        return body


class ModelCard(_Typed):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str

    def to_openai(self) -> dict[str, Any]:
        return self.model_dump()


class ModelList(_Typed):
    object: Literal["list"] = "list"
    data: list[ModelCard]

    def to_openai(self) -> dict[str, Any]:
        return self.model_dump()


class ChatBackend(Protocol):
    """What the faces need of the chat service (``service.chat.ChatService`` and test fakes).

    ``create`` and ``stream`` raise ``service.errors`` types. ``stream`` raises them when it is
    awaited (validation, and the engine's refusal of the first token: queue full, prompt too
    long), before any chunk; an error after that ends the iterator with the error. Cancelling
    the consumer (or closing the iterator) cancels the generation.
    """

    async def create(self, body: Mapping[str, Any]) -> ChatCompletion: ...

    async def stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatCompletionChunk]: ...

    def list_models(self) -> ModelList: ...

    def get_model(self, model_id: str) -> ModelCard: ...

    async def ready(self) -> bool: ...
