"""ChatService: the one pipeline both faces call (validate, prompt, generate, parse, respond)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from service import metrics
from service.detokenize import TextAccumulator
from service.errors import Internal, InvalidRequest, NotFound, Unavailable
from service.generation import Engine, FinishReason, GenerationChunk
from service.grammar import ArgumentsCheck, arguments_check, request_grammar
from service.grammar_check import check_request_grammar
from service.models import ModelRegistry, ServedModel
from service.prompting.chat_prompt import ChatPrompt, build_prompt
from service.protocol import ChatRequest, choice_body, completion_body, parse_request

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class _Generation:
    """One choice being generated."""

    index: int
    text: TextAccumulator
    finish_reason: FinishReason | None = None
    first_token_at: float | None = None


class ChatService:
    """OpenAI Chat Completions over the served models and one engine."""

    def __init__(
        self,
        models: ModelRegistry,
        engine: Engine,
        *,
        default_max_tokens: int = 512,
        prepare_workers: int = 4,
    ) -> None:
        self._models = models
        self._engine = engine
        self._default_max_tokens = default_max_tokens
        self._workers = ThreadPoolExecutor(prepare_workers, thread_name_prefix="prepare")

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A ``chat.completion`` for an OpenAI request body; raises ``ServiceError`` types.

        Cancelling the awaiting task closes every engine generation (Triton cancels them).
        """
        request = await self._offload(parse_request, body)
        model = self._models.get(request.model)
        prompt, grammar = await self._offload(prepare, model, request)
        max_tokens = self._max_tokens(model, request, len(prompt.ids))
        generations = [
            _Generation(i, TextAccumulator(model.tokenizer, request.stop_strings))
            for i in range(request.n)
        ]
        started = time.monotonic()
        await _run_all(
            [self._generate(model, request, prompt, grammar, max_tokens, g) for g in generations]
        )
        return self._respond(model, request, prompt, generations, started)

    async def _offload(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in the bounded worker pool: validating, rendering and tokenizing
        a 4 MB request takes seconds that the event loop (health checks) must not wait."""
        return await asyncio.get_running_loop().run_in_executor(self._workers, function, *args)

    def list_models(self) -> dict[str, Any]:
        """The body of ``GET /v1/models``."""
        return {"object": "list", "data": [_model_body(model) for model in self._models]}

    def get_model(self, model_id: str) -> dict[str, Any]:
        """The body of ``GET /v1/models/{id}``; ``NotFound`` for an unknown id."""
        for model in self._models:
            if model.id == model_id:
                return _model_body(model)
        raise NotFound(f"The model {model_id!r} does not exist.", code="model_not_found")

    async def ready(self) -> bool:
        """Whether the engine serves every model."""
        states = await asyncio.gather(
            *(self._engine.is_ready(m.triton_model) for m in self._models)
        )
        return all(states)

    def _max_tokens(self, model: ServedModel, request: ChatRequest, prompt_tokens: int) -> int:
        """The completion budget; ``context_length_exceeded`` when it does not fit."""
        requested = request.requested_max_tokens
        remaining = model.max_context - prompt_tokens
        if remaining < 1 or (requested is not None and requested > remaining):
            asked = requested if requested is not None else 1
            raise InvalidRequest(
                f"This model's maximum context length is {model.max_context} tokens. However, "
                f"you requested {prompt_tokens + asked} tokens ({prompt_tokens} in the messages, "
                f"{asked} in the completion). Please reduce the length of the messages or "
                "completion.",
                param="messages",
                code="context_length_exceeded",
            )
        return requested if requested is not None else min(self._default_max_tokens, remaining)

    async def _generate(
        self,
        model: ServedModel,
        request: ChatRequest,
        prompt: ChatPrompt,
        grammar: str | None,
        max_tokens: int,
        generation: _Generation,
    ) -> None:
        """Stream one choice into ``generation``; stop strings close the stream early."""
        params = request.to_sampling_params(
            max_tokens=max_tokens,
            stop_token_ids=model.card.stop_token_ids,
            defaults=model.card.sampling_defaults,
            choice=generation.index,
            grammar=grammar,
            grammar_prefill_tokens=prompt.prefill_tokens,
        )
        stream = self._engine.generate(model.triton_model, prompt.ids, params)
        try:
            async for chunk in stream:
                _consume(generation, chunk)
                if generation.text.stopped:
                    break
        finally:
            await _close(stream)
        generation.text.finish()
        if generation.text.stopped:
            generation.finish_reason = "stop"
        _check_finished(generation)

    def _respond(
        self,
        model: ServedModel,
        request: ChatRequest,
        prompt: ChatPrompt,
        generations: list[_Generation],
        started: float,
    ) -> dict[str, Any]:
        check = arguments_check(request)
        choices = [_choice(model, request, prompt, g, check) for g in generations]
        completion_tokens = sum(g.text.token_count for g in generations)
        first = [g.first_token_at for g in generations if g.first_token_at is not None]
        if first:
            metrics.TIME_TO_FIRST_TOKEN.observe(min(first) - started)
        metrics.PROMPT_TOKENS.labels(model.id).inc(len(prompt.ids))
        metrics.COMPLETION_TOKENS.labels(model.id).inc(completion_tokens)
        calls = sum(len(c["message"].get("tool_calls", [])) for c in choices)
        metrics.TOOL_CALLS.labels(model.id).inc(calls)
        return completion_body(
            model=model.id,
            fingerprint=model.fingerprint,
            choices=choices,
            prompt_tokens=len(prompt.ids),
            completion_tokens=completion_tokens,
        )


def prepare(model: ServedModel, request: ChatRequest) -> tuple[ChatPrompt, str | None]:
    """The request's prompt and grammar (checked against the model's tokenizer)."""
    prompt = build_prompt(model, request)
    grammar = request_grammar(request, model.dialect.syntax, model.tokenizer)
    prefill = prompt.ids[len(prompt.ids) - prompt.prefill_tokens :] if prompt.prefill_tokens else []
    check_request_grammar(request, grammar, prefill, model.tokenizer)
    return prompt, grammar


def _consume(generation: _Generation, chunk: GenerationChunk) -> None:
    if chunk.token_ids and generation.first_token_at is None:
        generation.first_token_at = time.monotonic()
    generation.text.add(chunk.token_ids)
    generation.finish_reason = chunk.finish_reason or generation.finish_reason


def _check_finished(generation: _Generation) -> None:
    if generation.finish_reason == "cancelled":
        raise Unavailable("the inference server cancelled the generation")
    if generation.finish_reason is None:
        logger.error("choice %d: the engine stream ended without a finish reason", generation.index)
        raise Internal("the inference server ended a generation without a finish reason")


def _choice(
    model: ServedModel,
    request: ChatRequest,
    prompt: ChatPrompt,
    generation: _Generation,
    check: ArgumentsCheck,
) -> dict[str, Any]:
    """The response choice: calls parsed per the model's dialect when tools are in play."""
    text = prompt.prefill + generation.text.text
    reason = generation.finish_reason or "stop"
    if not prompt.tool_names:
        return choice_body(generation.index, text or None, [], reason)
    parser = model.dialect(
        prompt.tool_names, parallel=request.parallel_tool_calls, check_arguments=check
    )
    parsed = parser.parse(text)
    calls = [call.to_openai() for call in parsed.tool_calls]
    # A cut-off answer says so ("length"), even when calls before the cut were parsed.
    finish = "tool_calls" if calls and reason != "length" else reason
    return choice_body(generation.index, parsed.content, calls, finish)


async def _run_all(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run the choices concurrently; on error or cancellation, cancel and await them all."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)


async def _close(stream: AsyncIterator[GenerationChunk]) -> None:
    """Close an engine stream (cancels the request in Triton when it is still running)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _model_body(model: ServedModel) -> dict[str, Any]:
    return {"id": model.id, "object": "model", "created": model.created, "owned_by": "fncall"}
