"""Scripted stand-ins for the chat service's two calls (the translator needs no more)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

from service.errors import InvalidRequest
from tests.unit.api.fake_chat import COMPLETION


class ScriptedChat:
    """Answers ``completions`` in turn; records every chat body; raises ``error`` if set."""

    def __init__(self, *completions: dict[str, Any]) -> None:
        self.completions = list(completions) or [COMPLETION]
        self.bodies: list[Mapping[str, Any]] = []
        self.error: InvalidRequest | None = None

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.bodies.append(copy.deepcopy(dict(body)))
        if self.error is not None:
            raise self.error
        return self.completions[min(len(self.bodies), len(self.completions)) - 1]


class ScriptedStreams:
    """Chat streaming over fixed chunks; records bodies; raises ``error`` when awaited."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.bodies: list[Mapping[str, Any]] = []
        self.error: InvalidRequest | None = None

    async def stream(self, body: Mapping[str, Any]) -> AsyncIterator[Mapping[str, Any]]:
        self.bodies.append(body)
        if self.error is not None:
            raise self.error

        async def replay() -> AsyncIterator[Mapping[str, Any]]:
            for chunk in self.chunks:
                yield chunk

        return replay()


def chat_chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [choice],
    }
