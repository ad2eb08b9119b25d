"""The seam between ChatService and the inference engine (Triton): token ids in, token ids out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.triton_contract import SAMPLING_DEFAULTS, FinishReason

__all__ = ["Engine", "FinishReason", "GenerationChunk", "SamplingParams"]


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding parameters, already validated by the service."""

    max_tokens: int
    temperature: float = SAMPLING_DEFAULTS.temperature  # 0 means greedy
    top_p: float = SAMPLING_DEFAULTS.top_p
    top_k: int = SAMPLING_DEFAULTS.top_k  # 0 means no top-k cut
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    grammar: str | None = None  # llguidance grammar of the assistant turn (service.grammar)
    grammar_prefill_tokens: int = 0  # the prompt's last tokens already in that turn (pre-fill)


@dataclass(frozen=True)
class GenerationChunk:
    """New tokens of one sequence; the last chunk carries ``finish_reason``."""

    token_ids: list[int]
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the model's prefix cache (final chunk)


class Engine(Protocol):
    """Streams generated token ids for one prompt from one Triton model.

    ``generate`` raises ``service.errors`` types: ``InvalidRequest`` (e.g. prompt over the
    context), ``Overloaded`` (queue full), ``Unavailable`` (Triton down). Closing the iterator
    early (``aclose``) cancels the request in Triton and frees its KV slot.
    """

    def generate(
        self, model: str, prompt_ids: Sequence[int], params: SamplingParams
    ) -> AsyncIterator[GenerationChunk]: ...

    async def is_ready(self, model: str) -> bool: ...

    async def close(self) -> None: ...
