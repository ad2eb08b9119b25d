"""In-flight (continuous) batching over a :class:`KVDecoder`, independent of Triton.

One decode thread runs the loop: admit waiting requests into free slots (bounded by the number
of slots and the KV token budget), feed prompts in chunks, run ONE batched ``decoder.step`` for
every running sequence, sample, emit, and retire finished or cancelled sequences at once. Results
leave through a queue drained by a sender thread, so a slow sink never stalls decoding. Every
request gets exactly one final output on every path (finished, cancelled, rejected, failed,
shut down).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from service.runtime.decoder import KVDecoder
from service.runtime.prefix_cache import Placement, SlotContents
from service.runtime.sampling import SamplingConfig, make_rng, sample
from service.triton_contract import SAMPLING_DEFAULTS, ErrorKind, FinishReason, ModelError

logger = logging.getLogger(__name__)


class RequestError(Exception):
    """A per-request failure: its kind and the request field at fault (``param``, the
    OpenAI name), sent to the client as a structured :class:`ModelError`."""

    def __init__(self, kind: ErrorKind, message: str, param: str | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.model_error = ModelError(kind, message, param)


@dataclass(frozen=True)
class Output:
    """One response of a request: new tokens, or the final result, or an error."""

    token_ids: list[int]
    finish_reason: FinishReason | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: RequestError | None = None
    cached_tokens: int = 0  # prompt tokens served from the prefix cache (first and final)

    @property
    def final(self) -> bool:
        return self.finish_reason is not None or self.error is not None


class TokenConstraint(Protocol):
    """A grammar over one sequence's generated tokens (``service.runtime.constraint``)."""

    def allowed(self) -> np.ndarray:
        """Bool ``[vocab]``: tokens allowed next (stop tokens are decided by ``accepting``)."""
        ...

    def accepting(self) -> bool:
        """Whether the sequence may stop here."""
        ...

    def advance(self, token: int) -> None:
        """Feed one sampled (non-stop) token."""
        ...

    def finished(self) -> bool:
        """Whether nothing but a stop token may follow."""
        ...


class ResponseSink(Protocol):
    """Where one request's outputs go (e.g. a Triton response sender)."""

    def send(self, output: Output) -> None:
        """Deliver one output; the last one has ``final`` set."""
        ...

    def is_cancelled(self) -> bool:
        """Whether the client has cancelled the request."""
        ...


@dataclass(frozen=True)
class Request:
    """A generation request as the scheduler sees it (already parsed)."""

    prompt_ids: list[int]
    max_tokens: int
    sink: ResponseSink
    temperature: float = SAMPLING_DEFAULTS.temperature
    top_p: float = SAMPLING_DEFAULTS.top_p
    top_k: int = SAMPLING_DEFAULTS.top_k
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    constraint: TokenConstraint | None = None  # masks the logits of every sampled token


@dataclass(frozen=True)
class SchedulerConfig:
    """Bounds of the scheduler (slot count and capacity come from the decoder)."""

    max_queue: int = 64  # requests waiting for a slot beyond this are rejected as overloaded
    max_total_kv_tokens: int = 0  # 0: num_slots * max_seq_len
    prefill_chunk: int = 512  # prompt tokens fed per sequence per step
    eos_token_ids: tuple[int, ...] = ()  # model-level stop ids, always honoured
    prefix_cache: bool = True  # reuse the KV of earlier prompts that share a prefix


@dataclass
class _Sequence:
    """Per-request decode state while it holds a slot."""

    request: Request
    slot: int
    budget: int  # reserved KV tokens: prompt + tokens it may generate
    limit: int  # tokens it may generate (max_tokens clamped to the slot)
    sampling: SamplingConfig
    rng: np.random.Generator
    stop_ids: frozenset[int]
    fed: int = 0  # prompt tokens already in the cache
    cached: int = 0  # of which served from the prefix cache
    generated: list[int] = field(default_factory=list)
    done: bool = False

    @property
    def prefilling(self) -> bool:
        return self.fed < len(self.request.prompt_ids)


class Scheduler:
    """Continuous batching decode loop over one decoder; thread-safe ``submit``."""

    def __init__(self, decoder: KVDecoder, config: SchedulerConfig) -> None:
        self._decoder = decoder
        self._config = config
        self._capacity = decoder.max_seq_len
        self._kv_budget = config.max_total_kv_tokens or decoder.num_slots * decoder.max_seq_len
        self._kv_reserved = 0
        self._eos = frozenset(config.eos_token_ids)
        self._waiting: deque[Request] = deque()
        self._running: dict[int, _Sequence] = {}
        self._free_slots = set(range(decoder.num_slots))
        self._contents = SlotContents(decoder.num_slots) if config.prefix_cache else None
        self._lock = threading.Condition()
        self._stopping = False
        self._outbox: queue.SimpleQueue[tuple[ResponseSink, Output] | None] = queue.SimpleQueue()
        self._loop_thread = threading.Thread(target=self._loop, name="decode-loop", daemon=True)
        self._send_thread = threading.Thread(target=self._send_loop, name="sender", daemon=True)
        self._loop_thread.start()
        self._send_thread.start()

    # -- public --------------------------------------------------------------------------------

    def submit(self, request: Request) -> None:
        """Queue a request; problems come back through its sink as one final error."""
        try:
            self._validate(request)
        except RequestError as invalid:
            self._emit(request.sink, Output([], error=invalid))
            return
        with self._lock:
            if self._stopping:  # the sender thread may be gone: answer inline
                error = RequestError("unavailable", "the model is shutting down")
                _deliver(request.sink, Output([], error=error))
                return
            if len(self._waiting) >= self._config.max_queue + len(self._free_slots):
                error = RequestError(
                    "overloaded", f"the queue is full ({self._config.max_queue} waiting requests)"
                )
            else:
                self._waiting.append(request)
                self._lock.notify()
                return
        self._emit(request.sink, Output([], error=error))

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Fail queued and running requests, stop the loop, flush the outbox, join threads."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._loop_thread.join(timeout_s)
        self._outbox.put(None)
        self._send_thread.join(timeout_s)

    @property
    def active(self) -> int:
        """Sequences holding a slot (for tests and metrics)."""
        return len(self._running)

    # -- validation ----------------------------------------------------------------------------

    def _validate(self, request: Request) -> None:
        prompt = len(request.prompt_ids)
        if prompt == 0:
            raise RequestError("invalid", "the prompt is empty", "messages")
        if prompt >= self._capacity:
            raise RequestError(
                "invalid",
                f"the prompt has {prompt} tokens; this model's context holds at most "
                f"{self._capacity - 1} prompt tokens",
                "messages",
            )
        vocab = self._decoder.vocab_size
        if min(request.prompt_ids) < 0 or max(request.prompt_ids) >= vocab:
            raise RequestError("invalid", f"prompt token ids must lie in [0, {vocab})", "messages")
        if request.max_tokens < 1:
            raise RequestError("invalid", "max_tokens must be at least 1", "max_tokens")
        if not request.temperature >= 0 or math.isinf(request.temperature):
            raise RequestError("invalid", "temperature must be a finite number >= 0", "temperature")
        if not 0 < request.top_p <= 1:
            raise RequestError("invalid", "top_p must lie in (0, 1]", "top_p")
        if request.top_k < 0:
            raise RequestError("invalid", "top_k must be >= 0", "top_k")
        if request.seed is not None and request.seed < 0:
            raise RequestError("invalid", "seed must be >= 0", "seed")

    # -- decode thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._wait_for_work():
                try:
                    self._iterate()
                except Exception as exc:
                    logger.exception("decode iteration failed; failing %d sequences", self.active)
                    self._fail_running(RequestError("internal", f"{type(exc).__name__}"))
        finally:
            self._fail_all(RequestError("unavailable", "the model is shutting down"))

    def _iterate(self) -> None:
        """One scheduling round: drop cancelled waiters, admit, run one step."""
        self._drop_cancelled_waiting()
        self._admit()
        if self._running:
            self._step()

    def _wait_for_work(self) -> bool:
        """Block while idle; False once shutting down."""
        with self._lock:
            while not self._stopping and not self._waiting and not self._running:
                self._lock.wait()
            return not self._stopping

    def _drop_cancelled_waiting(self) -> None:
        with self._lock:
            cancelled = [r for r in self._waiting if r.sink.is_cancelled()]
            for request in cancelled:
                self._waiting.remove(request)
        for request in cancelled:
            self._emit(request.sink, Output([], "cancelled", len(request.prompt_ids), 0))

    def _admit(self) -> None:
        """Move waiting requests into free slots, FIFO, while slots and KV budget allow."""
        while self._free_slots:
            with self._lock:
                if not self._waiting:
                    return
                request = self._waiting[0]
                limit = min(request.max_tokens, self._capacity - len(request.prompt_ids))
                budget = len(request.prompt_ids) + limit
                if self._kv_reserved + budget > self._kv_budget and self._running:
                    return  # head of line waits for budget; an idle model always admits
                self._waiting.popleft()
            placement = self._place(request.prompt_ids)
            self._free_slots.discard(placement.slot)
            self._kv_reserved += budget
            self._running[placement.slot] = _Sequence(
                request=request,
                slot=placement.slot,
                budget=budget,
                limit=limit,
                sampling=SamplingConfig(request.temperature, request.top_p, request.top_k),
                rng=make_rng(request.seed),
                stop_ids=self._eos | frozenset(request.stop_token_ids),
                fed=placement.reuse,
                cached=placement.reuse,
            )

    def _place(self, prompt: list[int]) -> Placement:
        """A free slot for ``prompt``, holding as much of its beginning as the prefix cache has
        (copied from a busy slot when that saves more); without the cache the lowest free slot,
        which keeps running slots packed for the decoder's batched runs."""
        contents = self._contents
        if contents is None:
            slot = min(self._free_slots)
            self._decoder.reset(slot)
            return Placement(slot)
        decoder = self._decoder
        placement = contents.place(
            prompt, self._free_slots, self._running, decoder.length, decoder.can_copy_prefix
        )
        if placement.source is not None:
            decoder.copy_prefix(placement.source, placement.slot, placement.reuse)
        else:
            decoder.truncate(placement.slot, placement.reuse)
        contents.record(placement.slot, prompt)
        return placement

    def _step(self) -> None:
        """One batched decoder call for every running sequence, then sample and retire."""
        for seq in list(self._running.values()):
            if seq.request.sink.is_cancelled():
                self._retire(seq, Output([], "cancelled"))
        batch = list(self._running.values())
        if not batch:
            return
        try:
            tokens = [self._next_input(seq) for seq in batch]
            logits = self._decoder.step([seq.slot for seq in batch], tokens)
            ready = [row for row, seq in enumerate(batch) if not seq.prefilling]
            rows = logits[ready]
            broken: dict[int, RequestError] = {}  # row -> why its grammar could not mask it
            for index, row in enumerate(ready):
                if batch[row].request.constraint is not None:
                    try:
                        _mask(rows[index], batch[row])
                    except RequestError as error:
                        broken[row] = error
            picked = sample(
                rows,
                [batch[row].sampling for row in ready],
                [batch[row].rng for row in ready],
            )
        except Exception as exc:
            logger.exception("decode step failed for %d sequences", len(batch))
            self._fail_running(RequestError("internal", f"decoding failed: {type(exc).__name__}"))
            return
        for row, token in zip(ready, picked.tolist(), strict=True):
            if row in broken:
                self._retire(batch[row], Output([], error=broken[row]))
            else:
                self._advance(batch[row], int(token))

    def _next_input(self, seq: _Sequence) -> list[int]:
        """The next prompt chunk while prefilling, else the last sampled token. A chunk never
        leaves one token behind: every prompt token of a longer prompt is then computed by the
        decoder's multi-row kernels, so prefix-cache hits reproduce uncached results exactly."""
        if seq.prefilling:
            prompt = seq.request.prompt_ids
            end = seq.fed + self._config.prefill_chunk
            if len(prompt) - end == 1 and end - seq.fed > 1:
                end -= 1
            chunk = prompt[seq.fed : end]
            seq.fed += len(chunk)
            return chunk
        return [seq.generated[-1]]

    def _advance(self, seq: _Sequence, token: int) -> None:
        """Record one sampled token; emit it, or finish the sequence (a stop token, the end of
        its grammar, or its token limit)."""
        seq.generated.append(token)
        if token in seq.stop_ids:
            self._retire(seq, Output([], "stop"))
            return
        constraint = seq.request.constraint
        if constraint is not None:
            try:
                constraint.advance(token)
            except RequestError as error:
                self._retire(seq, Output([], error=error))
                return
            if constraint.finished():
                self._retire(seq, Output([token], "stop"))
                return
        if len(seq.generated) >= seq.limit:
            self._retire(seq, Output([token], "length"))
        else:
            # The first token says how much of the prompt came from the cache: a client that
            # stops reading early (a stop string, a dropped call) never sees the final output.
            cached = seq.cached if len(seq.generated) == 1 else 0
            self._emit(seq.request.sink, Output([token], cached_tokens=cached))

    def _retire(self, seq: _Sequence, output: Output) -> None:
        """Free the slot and send the one final output (with usage filled in)."""
        if seq.done:
            return
        seq.done = True
        self._running.pop(seq.slot, None)
        self._kv_reserved -= seq.budget
        try:
            self._keep(seq, output.error is None)
        except Exception:
            logger.exception("releasing slot %d failed", seq.slot)
        finally:
            self._free_slots.add(seq.slot)
            final = Output(
                output.token_ids,
                output.finish_reason,
                prompt_tokens=len(seq.request.prompt_ids),
                completion_tokens=len(seq.generated),
                error=output.error,
                cached_tokens=seq.cached,
            )
            self._emit(seq.request.sink, final)

    def _keep(self, seq: _Sequence, clean: bool) -> None:
        """Record the prompt tokens a leaving sequence's slot holds for the prefix cache (not
        its generated ones: see ``prefix_cache``), or empty the slot after a failure or
        without the cache."""
        contents = self._contents
        if contents is None or not clean:
            if contents is not None:
                contents.forget(seq.slot)
            self._decoder.reset(seq.slot)
            return
        held = self._decoder.length(seq.slot)
        contents.record(seq.slot, seq.request.prompt_ids[:held])

    def _fail_all(self, error: RequestError) -> None:
        """Fail every queued and running request (shutdown or a crashed loop)."""
        with self._lock:
            self._stopping = True
            waiting = list(self._waiting)
            self._waiting.clear()
        for request in waiting:
            self._emit(request.sink, Output([], error=error))
        self._fail_running(error)

    def _fail_running(self, error: RequestError) -> None:
        for seq in list(self._running.values()):
            self._retire(seq, Output([], error=error))

    # -- sender thread -------------------------------------------------------------------------

    def _emit(self, sink: ResponseSink, output: Output) -> None:
        self._outbox.put((sink, output))

    def _send_loop(self) -> None:
        while self._send_pending():
            pass

    def _send_pending(self) -> bool:
        """Deliver what is queued (waiting for the first item), merged per request; False after
        the stop sentinel. Its own frame, so no sink outlives its delivery here."""
        items = [self._outbox.get()]
        while not self._outbox.empty():
            items.append(self._outbox.get_nowait())
        for sink, output in coalesce([item for item in items if item is not None]):
            _deliver(sink, output)
        return None not in items


def _mask(logits: np.ndarray, seq: _Sequence) -> None:
    """Keep only the tokens ``seq``'s grammar allows (stop tokens once it is accepting)."""
    constraint = seq.request.constraint
    assert constraint is not None
    allowed = constraint.allowed()
    allowed[list(seq.stop_ids)] = constraint.accepting()
    if not allowed.any():
        raise RequestError("internal", "the grammar allows no next token")
    logits[~allowed] = -np.inf


def coalesce(items: list[tuple[ResponseSink, Output]]) -> list[tuple[ResponseSink, Output]]:
    """Merge each request's consecutive token outputs (and the final that follows them) into
    one output, keeping every request's order; errors are never merged."""
    merged: list[tuple[ResponseSink, Output]] = []
    open_index: dict[int, int] = {}  # id(sink) -> index in merged of its last token output
    for sink, output in items:
        index = open_index.get(id(sink))
        if index is not None and output.error is None:
            previous = merged[index][1]
            tokens = previous.token_ids + output.token_ids
            cached = max(previous.cached_tokens, output.cached_tokens)
            merged[index] = (sink, replace(output, token_ids=tokens, cached_tokens=cached))
        else:
            merged.append((sink, output))
            index = len(merged) - 1
        if output.error is None and not output.final:
            open_index[id(sink)] = index
        else:
            open_index.pop(id(sink), None)
    return merged


def _deliver(sink: ResponseSink, output: Output) -> None:
    """Send one output; a failing sink is logged, never raised into the scheduler."""
    try:
        sink.send(output)
    except Exception:
        logger.exception("sending a response failed")
