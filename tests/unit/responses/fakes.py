"""A scripted stand-in for the chat service's two generation calls (all the translator uses)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Mapping
from typing import Any

from service.chat_types import ChatCompletion, ChatCompletionChunk
from service.errors import InvalidRequest
from tests.unit.api.fake_chat import COMPLETION


class ScriptedChat:
    """``create`` answers ``completions`` in turn, ``stream`` replays ``chunks``; both record
    the chat body and raise ``error`` (before any chunk) when it is set."""

    def __init__(
        self, *completions: dict[str, Any], chunks: list[dict[str, Any]] | None = None
    ) -> None:
        self.completions = list(completions) or [COMPLETION]
        self.chunks = chunks or []
        self.bodies: list[Mapping[str, Any]] = []
        self.error: InvalidRequest | None = None

    async def create(self, body: Mapping[str, Any]) -> ChatCompletion:
        self._admit(body)
        completion = self.completions[min(len(self.bodies), len(self.completions)) - 1]
        return ChatCompletion.model_validate(completion)

    async def stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        self._admit(body)

        async def replay() -> AsyncIterator[ChatCompletionChunk]:
            for chunk in self.chunks:
                yield ChatCompletionChunk.model_validate(chunk)

        return replay()

    def _admit(self, body: Mapping[str, Any]) -> None:
        self.bodies.append(copy.deepcopy(dict(body)))
        if self.error is not None:
            raise self.error


def chat_chunk(
    delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    """A ``chat.completion.chunk`` of one choice (none when ``delta`` is None)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunk.update(system_fingerprint="fp", choices=choices)
    if usage is not None:
        chunk["usage"] = usage
    return chunk
