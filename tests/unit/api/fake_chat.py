"""A scripted stand-in for ChatService: the faces only translate, so this is all they need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from service.chat_types import (
    ChatCompletion,
    ChatCompletionChunk,
    ModelCard,
    ModelList,
)
from service.errors import InvalidRequest, NotFound, ServiceError

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_x",
                        "type": "function",
                        "function": {"name": "w", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        }
    ],
    "usage": {
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1},
    },
    "system_fingerprint": "fp",
}


def _chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return {**base, "system_fingerprint": "fp", "choices": choices, **extra}


def _choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}


CALL_HEAD = {"index": 0, "id": "call_x", "type": "function", "function": {"name": "w"}}
CHUNKS = [
    _chunk([_choice({"role": "assistant"})]),
    _chunk([_choice({"content": "Héllo"})]),
    _chunk([_choice({"tool_calls": [{**CALL_HEAD, "function": {"name": "w", "arguments": ""}}]})]),
    _chunk([_choice({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "P"}'}}]})]),
    _chunk([_choice({}, "tool_calls")]),
    _chunk([], usage=COMPLETION["usage"]),
]


class FakeChat:
    """``create`` answers COMPLETION and ``stream`` CHUNKS, raise ``error`` (``stream``: after
    ``error_after`` chunks, else before any), or wait on ``gate``; records bodies."""

    def __init__(self) -> None:
        self.bodies: list[Mapping[str, Any]] = []
        self.error: ServiceError | Exception | None = None
        self.error_after: int | None = None
        self.gate: asyncio.Event | None = None
        self.cancelled = 0
        self.closed = 0
        self.is_ready = True

    async def _admit(self, body: Mapping[str, Any]) -> None:
        self.bodies.append(body)
        if not isinstance(body, dict) or "model" not in body:
            raise InvalidRequest("you must provide a model parameter", param="model")
        if self.gate is not None and self.error_after is None:
            await self._wait()
        if self.error is not None and self.error_after is None:
            raise self.error

    async def _wait(self) -> None:
        assert self.gate is not None
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def create(self, body: Mapping[str, Any]) -> ChatCompletion:
        await self._admit(body)
        return ChatCompletion.model_validate(COMPLETION)

    async def stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        await self._admit(body)
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            for number, chunk in enumerate(CHUNKS):
                if number == self.error_after:
                    if self.gate is not None:
                        await self._wait()
                    assert self.error is not None
                    raise self.error
                yield ChatCompletionChunk.model_validate(chunk)
        finally:
            self.closed += 1

    def list_models(self) -> ModelList:
        return ModelList(data=[ModelCard(id="m", created=1, owned_by="fncall")])

    def get_model(self, model_id: str) -> ModelCard:
        if model_id != "m":
            raise NotFound(f"The model '{model_id}' does not exist", code="model_not_found")
        return self.list_models().data[0]

    async def ready(self) -> bool:
        return self.is_ready
