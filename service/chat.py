"""ChatService: the one pipeline both faces call (validate, prompt, generate, parse, respond).

Streamed and non-streamed answers run the same generation (:meth:`ChatService._generate`): the
engine's tokens are detokenized per choice, and at the end the dialect's whole-text parser splits
the text into ``content`` and ``tool_calls``. A streamed choice also reports, as it goes, the
content that can no longer be part of a call (``service.toolcalls.holdback``), and the rest of
its answer after the parse; a completion is built from the parse alone.

Agent loops: a choice whose calls were all answered earlier in the conversation is decoded
again with calls off (``tool_choice: none``), and generation stops at the first call the parser
would drop (``service.toolcalls.repeats``); docs/api.md, "Agent loops".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service import metrics
from service.chat_types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    FunctionCall,
    FunctionDelta,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from service.detokenize import TextAccumulator
from service.errors import Internal, InvalidRequest, ModelNotFound, Unavailable
from service.generation import Engine, GenerationChunk
from service.generation import FinishReason as EngineFinish
from service.grammar import (
    ArgumentsCheck,
    arguments_check,
    goes_on_after_calls,
    request_grammar,
)
from service.grammar_check import check_request_grammar
from service.models import ModelRegistry, ServedModel
from service.prompting.chat_prompt import ChatPrompt, build_prompt
from service.protocol import ChatRequest, parse_request
from service.toolcalls import ToolCallParser
from service.toolcalls.base import new_call_id
from service.toolcalls.call_stream import CallStream
from service.toolcalls.holdback import HoldBack
from service.toolcalls.repeats import RepeatGuard

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Plan:
    """One validated request, ready to generate."""

    model: ServedModel
    request: ChatRequest
    prompt: ChatPrompt
    grammar: str | None
    max_tokens: int
    check: ArgumentsCheck
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Event:
    """What a streamed choice reports: it started, a delta, its end, or an error."""

    index: int
    delta: Delta | None = None
    finish_reason: FinishReason | None = None
    error: BaseException | None = None


_Sink = Callable[[_Event], None]


@dataclass
class _Generation:
    """One choice being generated."""

    index: int
    text: TextAccumulator
    holdback: HoldBack | None = None  # streamed choices only
    calls: CallStream | None = None  # streamed choices whose grammar forces calls
    fed: int = 0  # characters of the answer fed to ``calls``
    engine_finish: EngineFinish | None = None
    first_token_at: float | None = None
    message: AssistantMessage | None = None
    finish_reason: FinishReason | None = None
    answered_only: bool = False  # its calls were all answered earlier in the conversation
    spent_tokens: int = 0  # tokens of an earlier, discarded decode of this choice
    cached_tokens: int = 0  # prompt tokens served from the model's prefix cache
    guard: RepeatGuard | None = None  # watches the calls of the decode under way


class ChatService:
    """OpenAI Chat Completions over the served models and one engine
    (a ``service.chat_types.ChatBackend``)."""

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

    async def create(self, body: Mapping[str, Any]) -> ChatCompletion:
        """A ``chat.completion`` for an OpenAI request body; raises ``ServiceError`` types.

        Cancelling the awaiting task closes every engine generation (Triton cancels them).
        """
        plan = await self._offload(self._plan, body)
        generations = [self._new_generation(plan, i, streamed=False) for i in range(plan.request.n)]
        await _run_all([self._generate(plan, g, None) for g in generations])
        usage = self._record(plan, generations)
        return ChatCompletion(
            id=_completion_id(),
            created=int(time.time()),
            model=plan.model.id,
            system_fingerprint=plan.model.fingerprint,
            choices=[
                Choice(index=g.index, message=g.message, finish_reason=g.finish_reason)
                for g in generations
                if g.message is not None and g.finish_reason is not None
            ],
            usage=usage,
        )

    async def stream(self, body: Mapping[str, Any]) -> AsyncIterator[ChatCompletionChunk]:
        """The ``chat.completion.chunk`` stream of an OpenAI request body.

        Raises ``ServiceError`` types here, before any chunk: validation, and any engine
        refusal before every choice has its first token. A later error is raised by the
        iterator. Closing the iterator (or cancelling its consumer) cancels the generation.
        """
        plan = await self._offload(self._plan, body)
        generations = [self._new_generation(plan, i, streamed=True) for i in range(plan.request.n)]
        queue: asyncio.Queue[_Event] = asyncio.Queue()
        tasks = [
            asyncio.ensure_future(_reporting(self._generate(plan, g, queue.put_nowait), g, queue))
            for g in generations
        ]
        try:
            early = await _first_tokens(queue, len(generations))
        except BaseException:
            await _cancel(tasks)
            raise
        return self._chunks(plan, generations, tasks, queue, early)

    def list_models(self) -> ModelList:
        """The body of ``GET /v1/models``."""
        return ModelList(data=[_model_card(model) for model in self._models])

    def get_model(self, model_id: str) -> ModelCard:
        """The body of ``GET /v1/models/{id}``; ``ModelNotFound`` for an unknown id."""
        for model in self._models:
            if model.id == model_id:
                return _model_card(model)
        raise ModelNotFound(f"The model {model_id!r} does not exist.")

    async def ready(self) -> bool:
        """Whether the engine serves every model."""
        states = await asyncio.gather(
            *(self._engine.is_ready(m.triton_model) for m in self._models)
        )
        return all(states)

    async def _offload(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` in the bounded worker pool: validating, rendering and tokenizing
        a 4 MB request takes seconds that the event loop (health checks) must not wait."""
        return await asyncio.get_running_loop().run_in_executor(self._workers, function, *args)

    def _plan(self, body: Mapping[str, Any]) -> _Plan:
        return self._plan_request(parse_request(body))

    def _plan_request(self, request: ChatRequest) -> _Plan:
        model = self._models.get(request.model)
        prompt = build_prompt(model, request)
        grammar = request_grammar(request, model.dialect.syntax, model.tokenizer)
        prefill = prompt.ids[len(prompt.ids) - prompt.prefill_tokens :]
        check_request_grammar(request, grammar, prefill, model.tokenizer)
        max_tokens = self._max_tokens(model, request, len(prompt.ids))
        return _Plan(model, request, prompt, grammar, max_tokens, arguments_check(request))

    def _new_generation(self, plan: _Plan, index: int, *, streamed: bool) -> _Generation:
        text = TextAccumulator(plan.model.tokenizer, plan.request.stop_strings)
        if not streamed:
            return _Generation(index, text)
        parsed = bool(plan.prompt.tool_names)
        holdback = HoldBack(plan.model.dialect.call_start if parsed else None)
        # Forced calls (a pre-fill under a grammar) stream as they are written; a stop string
        # could cut one short, so with stop strings they wait for the parse.
        forced = bool(plan.prompt.prefill) and plan.grammar is not None
        calls = CallStream() if forced and not plan.request.stop_strings else None
        return _Generation(index, text, holdback, calls)

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

    async def _generate(self, plan: _Plan, generation: _Generation, sink: _Sink | None) -> None:
        """Generate one choice to its parsed answer; stop strings close the stream early.
        With a ``sink``, report its start, its content as it settles, then the rest. A choice
        that only repeated answered calls is decoded again without tools (its text held back
        until the end when streamed)."""
        await self._decode(plan, generation, sink)
        _parse(plan, generation)
        if generation.answered_only:
            logger.debug("choice %d repeated answered calls: decoding again", generation.index)
            plain = self._plan_request(plan.request.model_copy(update={"tool_choice": "none"}))
            generation.spent_tokens += generation.text.token_count
            generation.text = TextAccumulator(plan.model.tokenizer, plan.request.stop_strings)
            generation.engine_finish = None
            await self._decode(plain, generation, None)
            _parse(plain, generation)
        if sink is not None:
            _report_rest(plan, generation, sink)

    async def _decode(self, plan: _Plan, generation: _Generation, sink: _Sink | None) -> None:
        """Stream the engine's tokens into ``generation`` until it ends, a stop string, or a
        call the parser would drop (a repeat: ``RepeatGuard``)."""
        params = plan.request.to_sampling_params(
            max_tokens=plan.max_tokens,
            stop_token_ids=plan.model.card.stop_token_ids,
            defaults=plan.model.card.sampling_defaults,
            choice=generation.index,
            grammar=plan.grammar,
            grammar_prefill_tokens=plan.prompt.prefill_tokens,
        )
        stream = self._engine.generate(plan.model.triton_model, plan.prompt.ids, params)
        # The guard's parser keeps answered calls: an answer may go on to new calls after one.
        guard = RepeatGuard(_parser(plan, drop_answered=False)) if plan.prompt.tool_names else None
        generation.guard = guard
        repeated = False
        try:
            async for chunk in stream:
                first = generation.first_token_at is None
                _consume(generation, chunk)
                if guard is not None:
                    repeated = guard.repeated(plan.prompt.prefill + generation.text.text)
                if sink is not None:
                    if first:
                        sink(_Event(generation.index))
                    if not repeated:
                        _report_content(plan, generation, sink)
                if generation.text.stopped or repeated:
                    break
        finally:
            await _close(stream)
        generation.text.finish()
        if generation.text.stopped or repeated:
            generation.engine_finish = "stop"
        _check_finished(generation)

    def _chunks(
        self,
        plan: _Plan,
        generations: list[_Generation],
        tasks: Sequence[asyncio.Future[None]],
        queue: asyncio.Queue[_Event],
        early: list[_Event],
    ) -> AsyncIterator[ChatCompletionChunk]:
        chunk_id, created = _completion_id(), int(time.time())

        def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=plan.model.id,
                system_fingerprint=plan.model.fingerprint,
                choices=choices,
                usage=usage,
            )

        def event_chunk(event: _Event) -> ChatCompletionChunk:
            delta = event.delta or Delta()
            return chunk(
                [ChunkChoice(index=event.index, delta=delta, finish_reason=event.finish_reason)]
            )

        async def chunks() -> AsyncIterator[ChatCompletionChunk]:
            try:
                for generation in generations:
                    role = ChunkChoice(index=generation.index, delta=Delta(role="assistant"))
                    yield chunk([role])
                for event in early:
                    yield event_chunk(event)
                finished = sum(event.finish_reason is not None for event in early)
                while finished < len(generations):
                    event = await queue.get()
                    if event.error is not None:
                        raise event.error
                    finished += event.finish_reason is not None
                    yield event_chunk(event)
                usage = self._record(plan, generations)
                options = plan.request.stream_options
                if options is not None and options.include_usage:
                    yield chunk([], usage)
            finally:
                await _cancel(tasks)

        return chunks()

    def _record(self, plan: _Plan, generations: list[_Generation]) -> Usage:
        """Record the answer's metrics; its usage."""
        model, prompt_tokens = plan.model, len(plan.prompt.ids)
        completion_tokens = sum(g.text.token_count + g.spent_tokens for g in generations)
        first = [g.first_token_at for g in generations if g.first_token_at is not None]
        if first:
            metrics.TIME_TO_FIRST_TOKEN.observe(min(first) - plan.started)
        metrics.PROMPT_TOKENS.labels(model.id).inc(prompt_tokens)
        cached = min(g.cached_tokens for g in generations)
        metrics.PROMPT_CACHED_TOKENS.labels(model.id).inc(cached)
        metrics.COMPLETION_TOKENS.labels(model.id).inc(completion_tokens)
        calls = sum(len(g.message.tool_calls or []) for g in generations if g.message)
        metrics.TOOL_CALLS.labels(model.id).inc(calls)
        return Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        )


def _consume(generation: _Generation, chunk: GenerationChunk) -> None:
    if generation.first_token_at is None:
        generation.first_token_at = time.monotonic()
    generation.text.add(chunk.token_ids)
    generation.engine_finish = chunk.finish_reason or generation.engine_finish
    generation.cached_tokens = max(generation.cached_tokens, chunk.cached_tokens)


def _check_finished(generation: _Generation) -> None:
    if generation.engine_finish == "cancelled":
        raise Unavailable("the inference server cancelled the generation")
    if generation.engine_finish is None:
        logger.error("choice %d: the engine stream ended without a finish reason", generation.index)
        raise Internal("the inference server ended a generation without a finish reason")


def _parse(plan: _Plan, generation: _Generation) -> None:
    """The choice's message: calls parsed per the model's dialect when tools are in play."""
    text = plan.prompt.prefill + generation.text.text
    reason: FinishReason = "length" if generation.engine_finish == "length" else "stop"
    if not plan.prompt.tool_names:
        generation.message = AssistantMessage(content=text or None)
        generation.finish_reason = reason
        return
    guard = generation.guard
    if guard is not None and guard.stopped is not None:
        text = text[: guard.stopped]
    checked = guard.checked if guard is not None else None
    if reason == "length" and checked is not None and goes_on_after_calls(plan.request):
        # Cut inside the call the grammar asked for after the checked ones
        # (``grammar.goes_on_after_calls``): the answer is its checked calls.
        text, reason = text[:checked], "stop"
    parsed = _parser(plan).parse(text)
    generation.answered_only = parsed.answered_only
    calls = [
        ToolCall(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))
        for call in parsed.tool_calls
    ]
    generation.message = AssistantMessage(content=parsed.content, tool_calls=calls or None)
    # A cut-off answer says so ("length"), even when calls before the cut were parsed.
    generation.finish_reason = "tool_calls" if calls and reason != "length" else reason


def _parser(plan: _Plan, *, drop_answered: bool = True) -> ToolCallParser:
    """The dialect parser of ``plan``. Under ``auto`` it drops calls answered in the
    conversation (``required`` and named choices must call, so they keep them)."""
    prompt = plan.prompt
    auto = drop_answered and plan.request.effective_tool_choice == "auto"
    return plan.model.dialect(
        prompt.tool_names,
        parallel=plan.request.parallel_tool_calls,
        check_arguments=plan.check,
        answered=prompt.answered if auto else frozenset(),
        context=prompt.context,
    )


def _report_content(plan: _Plan, generation: _Generation, sink: _Sink) -> None:
    """Report the content that can no longer be part of a call, or the forced calls so far."""
    text = generation.text
    if generation.calls is not None:
        if not generation.fed:
            _report_calls(generation, plan.prompt.prefill, sink)
        # The first call streams as it is written; the calls after it, which may be dropped
        # (``grammar._Writer.more``), once the guard has checked them.
        checked = generation.guard.checked if generation.guard is not None else None
        end = len(text.text) if checked is None else checked - len(plan.prompt.prefill)
        if end > generation.fed:
            _report_calls(generation, text.text[generation.fed : end], sink)
            generation.fed = end
        return
    if generation.holdback is None or plan.prompt.prefill:  # parsed at the end
        return
    new = generation.holdback.release(text.text, text.settled)
    if new:
        sink(_Event(generation.index, Delta(content=new)))


def _report_calls(generation: _Generation, text: str, sink: _Sink) -> None:
    assert generation.calls is not None
    for piece in generation.calls.feed(text):
        if piece.name is not None:
            function = FunctionDelta(name=piece.name, arguments="")
            call = ToolCallDelta(
                index=piece.index, id=new_call_id(), type="function", function=function
            )
        else:
            call = ToolCallDelta(
                index=piece.index, function=FunctionDelta(arguments=piece.arguments)
            )
        sink(_Event(generation.index, Delta(tool_calls=[call])))


def _streamed_calls_hold(generation: _Generation, calls: Sequence[ToolCall]) -> bool:
    """Whether the calls streamed so far are the parser's (not so when the answer was cut
    short by ``max_tokens`` inside a call: the parser then returns the text as content)."""
    if generation.calls is None:
        return True
    streamed = generation.calls.arguments
    return len(streamed) <= len(calls) and all(
        call.function.arguments.startswith(arguments)
        for call, arguments in zip(calls, streamed, strict=False)
    )


def _report_rest(plan: _Plan, generation: _Generation, sink: _Sink) -> None:
    """Report the rest of the parsed answer: held-back content, calls, the finish."""
    message, index = generation.message, generation.index
    if message is None or generation.holdback is None:
        return
    calls = message.tool_calls or []
    if not _streamed_calls_hold(generation, calls):
        logger.info(
            "choice %d: a streamed call was cut short (%s)", index, generation.finish_reason
        )
        sink(_Event(index, finish_reason=generation.finish_reason))
        return
    rest = generation.holdback.rest(message.content)
    if rest:
        sink(_Event(index, Delta(content=rest)))
    streamed = generation.calls.arguments if generation.calls is not None else []
    for number, arguments in enumerate(streamed):
        more = calls[number].function.arguments[len(arguments) :]
        if more:
            delta = ToolCallDelta(index=number, function=FunctionDelta(arguments=more))
            sink(_Event(index, Delta(tool_calls=[delta])))
    for number, call in enumerate(calls[len(streamed) :], start=len(streamed)):
        head = ToolCallDelta(
            index=number,
            id=call.id,
            type="function",
            function=FunctionDelta(name=call.function.name, arguments=""),
        )
        sink(_Event(index, Delta(tool_calls=[head])))
        body = FunctionDelta(arguments=call.function.arguments)
        sink(_Event(index, Delta(tool_calls=[ToolCallDelta(index=number, function=body)])))
    sink(_Event(index, finish_reason=generation.finish_reason))


async def _reporting(
    job: Coroutine[Any, Any, None], generation: _Generation, queue: asyncio.Queue[_Event]
) -> None:
    """Run a streamed choice; its error becomes an event (the consumer raises it)."""
    try:
        await job
    except Exception as exc:
        queue.put_nowait(_Event(generation.index, error=exc))


async def _first_tokens(queue: asyncio.Queue[_Event], choices: int) -> list[_Event]:
    """Wait until every choice has its first token (its start event); raise the first error.
    Returns the events that came meanwhile, in order."""
    started: set[int] = set()
    early: list[_Event] = []
    while len(started) < choices:
        event = await queue.get()
        if event.error is not None:
            raise event.error
        if event.delta is None and event.finish_reason is None:
            started.add(event.index)
        else:
            early.append(event)
    return early


async def _run_all(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run the choices concurrently; on error or cancellation, cancel and await them all."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        await _cancel(tasks)


async def _cancel(tasks: Sequence[asyncio.Future[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)


async def _close(stream: AsyncIterator[GenerationChunk]) -> None:
    """Close an engine stream (cancels the request in Triton when it is still running)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def _model_card(model: ServedModel) -> ModelCard:
    return ModelCard(id=model.id, created=model.created, owned_by="fncall")
