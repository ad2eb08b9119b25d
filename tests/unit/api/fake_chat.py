"""A scripted stand-in for ChatService: the faces only translate, so this is all they need."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from service.errors import InvalidRequest, NotFound, ServiceError

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "system_fingerprint": "fp",
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
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


class FakeChat:
    """``create`` answers COMPLETION, raises ``error``, or waits on ``gate``; records bodies."""

    def __init__(self) -> None:
        self.bodies: list[Mapping[str, Any]] = []
        self.error: ServiceError | Exception | None = None
        self.gate: asyncio.Event | None = None
        self.cancelled = 0
        self.is_ready = True

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        if not isinstance(body, dict) or "model" not in body:
            raise InvalidRequest("you must provide a model parameter", param="model")
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if self.error is not None:
            raise self.error
        return COMPLETION

    def list_models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": "m", "object": "model", "created": 1, "owned_by": "fncall"}],
        }

    def get_model(self, model_id: str) -> dict[str, Any]:
        if model_id != "m":
            raise NotFound(f"The model '{model_id}' does not exist", code="model_not_found")
        return self.list_models()["data"][0]

    async def ready(self) -> bool:
        return self.is_ready
