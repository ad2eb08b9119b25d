"""The continuous-batching scheduler over a fake decoder: joins, finishes, bounds, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from service.runtime.scheduler import (
    Output,
    Request,
    RequestError,
    Scheduler,
    SchedulerConfig,
    coalesce,
)

VOCAB = 50
WAIT_S = 5.0


class FakeDecoder:
    """Next token is ``last token + 1`` (mod VOCAB), or with ``whole_context`` a function of
    every cached token of the slot (so reusing the wrong cached prefix changes the answer);
    records every step and keeps each slot's cached token ids."""

    def __init__(self, num_slots: int = 4, max_seq_len: int = 64) -> None:
        self._num_slots = num_slots
        self._max_seq_len = max_seq_len
        self.contents: list[list[int]] = [[] for _ in range(num_slots)]
        self.whole_context = False
        self.copies: list[tuple[int, int, int]] = []  # (source, slot, length)
        self.calls: list[dict[int, int]] = []  # slot -> tokens appended, per step
        self.resets: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail_at_rows = 0  # raise once on the first step with this many rows
        self.delay_s = 0.0

    @property
    def num_slots(self) -> int:
        return self._num_slots

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    @property
    def vocab_size(self) -> int:
        return VOCAB

    def length(self, slot: int) -> int:
        return len(self.contents[slot])

    def step(self, slots: Sequence[int], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        assert self.gate.wait(WAIT_S)
        time.sleep(self.delay_s)
        if len(slots) == self.fail_at_rows:
            self.fail_at_rows = 0
            raise RuntimeError("boom")
        self.calls.append({slot: len(toks) for slot, toks in zip(slots, tokens, strict=True)})
        logits = np.zeros((len(slots), VOCAB), dtype=np.float32)
        for row, (slot, toks) in enumerate(zip(slots, tokens, strict=True)):
            assert len(self.contents[slot]) + len(toks) <= self._max_seq_len
            self.contents[slot].extend(toks)
            context = self.contents[slot]
            if self.whole_context:
                token = sum((i + 1) * t for i, t in enumerate(context)) % VOCAB
            else:
                token = (toks[-1] + 1) % VOCAB
            logits[row, token] = 10.0
        return logits

    def reset(self, slot: int) -> None:
        self.contents[slot] = []
        self.resets.append(slot)

    def truncate(self, slot: int, length: int) -> None:
        assert length <= len(self.contents[slot])
        del self.contents[slot][length:]

    @property
    def can_copy_prefix(self) -> bool:
        return True

    def copy_prefix(self, source: int, slot: int, length: int) -> None:
        assert source != slot and length <= len(self.contents[source])
        self.contents[slot] = self.contents[source][:length]
        self.copies.append((source, slot, length))


class Sink:
    """Collects outputs; ``done`` is set by the final one."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []
        self.done = threading.Event()
        self.cancelled = False

    def send(self, output: Output) -> None:
        assert not self.done.is_set(), "output after the final one"
        self.outputs.append(output)
        if output.final:
            self.done.set()

    def is_cancelled(self) -> bool:
        return self.cancelled

    def wait(self) -> Output:
        assert self.done.wait(WAIT_S), "no final output"
        return self.outputs[-1]

    @property
    def tokens(self) -> list[int]:
        return [t for o in self.outputs for t in o.token_ids]


@pytest.fixture
def decoder() -> FakeDecoder:
    return FakeDecoder()


@pytest.fixture
def make_scheduler(decoder: FakeDecoder) -> Iterator[object]:
    made: list[Scheduler] = []

    def make(**config: object) -> Scheduler:
        scheduler = Scheduler(decoder, SchedulerConfig(**config))  # type: ignore[arg-type]
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.shutdown()


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def _request(prompt: list[int], max_tokens: int = 5, **kw: object) -> tuple[Request, Sink]:
    sink = Sink()
    return Request(prompt_ids=prompt, max_tokens=max_tokens, sink=sink, temperature=0, **kw), sink  # type: ignore[arg-type]


def test_greedy_generation_ends_with_length(make_scheduler) -> None:
    scheduler = make_scheduler()
    request, sink = _request([1, 2, 3], max_tokens=4)
    scheduler.submit(request)
    final = sink.wait()
    assert final.finish_reason == "length"
    assert sink.tokens == [4, 5, 6, 7]
    assert (final.prompt_tokens, final.completion_tokens) == (3, 4)
    assert all(not o.final for o in sink.outputs[:-1])


def test_stop_ids_end_with_stop_and_are_not_emitted(make_scheduler) -> None:
    scheduler = make_scheduler(eos_token_ids=(9,))
    request, sink = _request([1], max_tokens=20, stop_token_ids=(5,))
    eos_request, eos_sink = _request([6], max_tokens=20)
    scheduler.submit(request)
    scheduler.submit(eos_request)
    assert sink.wait().finish_reason == "stop"
    assert sink.tokens == [2, 3, 4]
    assert sink.outputs[-1].completion_tokens == 4
    assert eos_sink.wait().finish_reason == "stop"
    assert eos_sink.tokens == [7, 8]


def test_new_requests_join_the_running_batch_between_steps(make_scheduler, decoder) -> None:
    decoder.delay_s = 0.005
    scheduler = make_scheduler()
    first, first_sink = _request([1, 2], max_tokens=30)
    scheduler.submit(first)
    _until(lambda: len(first_sink.outputs) >= 3)
    second, second_sink = _request([10, 11, 12], max_tokens=3)
    scheduler.submit(second)
    assert second_sink.wait().finish_reason == "length"
    assert second_sink.tokens == [13, 14, 15]
    assert first_sink.wait().finish_reason == "length"
    joined = [call for call in decoder.calls if len(call) == 2]
    assert joined, "the second request never shared a step with the first"
    assert any(sorted(call.values()) == [1, 3] for call in joined)  # its prefill beside a decode
    assert first_sink.tokens == [(2 + i) % VOCAB for i in range(1, 31)]


def test_long_prompts_are_prefilled_in_chunks(make_scheduler, decoder) -> None:
    scheduler = make_scheduler(prefill_chunk=4)
    request, sink = _request(list(range(10)), max_tokens=2)
    scheduler.submit(request)
    sink.wait()
    assert [next(iter(call.values())) for call in decoder.calls] == [4, 4, 2, 1]
    assert sink.tokens == [10, 11]


def test_prefill_chunks_never_leave_a_one_token_tail(make_scheduler, decoder) -> None:
    scheduler = make_scheduler(prefill_chunk=4)
    request, sink = _request(list(range(9)), max_tokens=1)
    scheduler.submit(request)
    sink.wait()
    assert [next(iter(call.values())) for call in decoder.calls] == [4, 3, 2]


def test_cancelled_request_leaves_at_once_and_frees_its_slot(make_scheduler, decoder) -> None:
    decoder.delay_s = 0.002
    scheduler = make_scheduler(prefix_cache=False)
    request, sink = _request([1], max_tokens=60)
    scheduler.submit(request)
    _until(lambda: len(sink.outputs) >= 2)
    sink.cancelled = True
    final = sink.wait()
    assert final.finish_reason == "cancelled"
    assert final.completion_tokens < 60
    assert scheduler.active == 0
    assert decoder.length(decoder.resets[-1]) == 0


def test_cancelled_while_waiting_never_runs() -> None:
    decoder = FakeDecoder(num_slots=1)
    decoder.gate.clear()
    scheduler = Scheduler(decoder, SchedulerConfig())
    running, running_sink = _request([1], max_tokens=3)
    waiting, waiting_sink = _request([1], max_tokens=3)
    scheduler.submit(running)
    _until(lambda: scheduler.active == 1)
    scheduler.submit(waiting)
    waiting_sink.cancelled = True
    decoder.gate.set()
    assert waiting_sink.wait().finish_reason == "cancelled"
    assert waiting_sink.tokens == []
    assert running_sink.wait().finish_reason == "length"
    scheduler.shutdown()


def test_a_full_queue_rejects_with_overloaded() -> None:
    decoder = FakeDecoder(num_slots=1)
    decoder.gate.clear()
    scheduler = Scheduler(decoder, SchedulerConfig(max_queue=1))
    running, running_sink = _request([1], max_tokens=2)
    scheduler.submit(running)
    _until(lambda: scheduler.active == 1)
    queued, queued_sink = _request([1], max_tokens=2)
    rejected, rejected_sink = _request([1], max_tokens=2)
    scheduler.submit(queued)
    scheduler.submit(rejected)
    error = rejected_sink.wait().error
    assert error is not None and str(error).startswith("overloaded: ")
    decoder.gate.set()
    assert running_sink.wait().finish_reason == "length"
    assert queued_sink.wait().finish_reason == "length"
    scheduler.shutdown()


def test_kv_budget_bounds_admission(make_scheduler, decoder) -> None:
    scheduler = make_scheduler(max_total_kv_tokens=15)
    sinks = []
    for _ in range(3):
        request, sink = _request([1, 2], max_tokens=8)  # reserves 10 tokens each
        scheduler.submit(request)
        sinks.append(sink)
    assert [s.wait().finish_reason for s in sinks] == ["length"] * 3
    assert max(len(call) for call in decoder.calls) == 1


def test_generation_is_clamped_to_the_slot_capacity(make_scheduler, decoder) -> None:
    scheduler = make_scheduler()
    request, sink = _request([1] * 60, max_tokens=100)
    scheduler.submit(request)
    final = sink.wait()
    assert final.finish_reason == "length"
    assert final.completion_tokens == 4  # 64 - 60


@pytest.mark.parametrize(
    ("prompt", "params", "needle"),
    [
        (list(range(64)), {}, "context"),
        ([], {}, "empty"),
        ([VOCAB], {}, "token ids"),
        ([1], {"max_tokens": 0}, "max_tokens"),
        ([1], {"top_p": 0.0}, "top_p"),
        ([1], {"top_k": -1}, "top_k"),
        ([1], {"seed": -5}, "seed"),
        ([1], {"temperature": -0.5}, "temperature"),
        ([1], {"temperature": float("nan")}, "temperature"),
    ],
)
def test_invalid_requests_get_one_clear_error(make_scheduler, prompt, params, needle) -> None:
    scheduler = make_scheduler()
    sink = Sink()
    fields = {"max_tokens": 3, **params}
    scheduler.submit(Request(prompt_ids=prompt, sink=sink, **fields))  # type: ignore[arg-type]
    error = sink.wait().error
    assert error is not None and error.kind == "invalid" and needle in str(error)
    assert error.model_error.param == ((params and next(iter(params))) or "messages")
    assert len(sink.outputs) == 1
    ok, ok_sink = _request([1], max_tokens=2)
    scheduler.submit(ok)
    assert ok_sink.wait().finish_reason == "length"


def test_a_failing_step_fails_its_batch_once_and_keeps_serving(make_scheduler, decoder) -> None:
    decoder.gate.clear()
    scheduler = make_scheduler()
    sinks = []
    for _ in range(3):
        request, sink = _request([1], max_tokens=5)
        scheduler.submit(request)
        sinks.append(sink)
    decoder.fail_at_rows = 3
    decoder.gate.set()
    for sink in sinks:
        error = sink.wait().error
        assert error is not None and str(error).startswith("internal: ")
        assert sum(o.final for o in sink.outputs) == 1
    assert scheduler.active == 0
    request, sink = _request([1], max_tokens=2)
    scheduler.submit(request)
    assert sink.wait().finish_reason == "length"


def test_a_failing_sink_does_not_stop_others(make_scheduler) -> None:
    class BrokenSink(Sink):
        def send(self, output: Output) -> None:
            raise OSError("client gone")

    scheduler = make_scheduler()
    scheduler.submit(Request(prompt_ids=[1], max_tokens=3, sink=BrokenSink(), temperature=0))
    request, sink = _request([1], max_tokens=3)
    scheduler.submit(request)
    assert sink.wait().finish_reason == "length"


def test_shutdown_fails_in_flight_requests_exactly_once() -> None:
    decoder = FakeDecoder(num_slots=1)
    decoder.gate.clear()
    scheduler = Scheduler(decoder, SchedulerConfig())
    sinks = []
    for _ in range(3):  # 1 running, 2 waiting
        request, sink = _request([1], max_tokens=50)
        scheduler.submit(request)
        sinks.append(sink)
        _until(lambda: scheduler.active == 1)
    threading.Timer(0.05, decoder.gate.set).start()
    scheduler.shutdown()
    for sink in sinks:
        error = sink.wait().error
        assert error is not None and str(error).startswith("unavailable: ")
        assert sum(o.final for o in sink.outputs) == 1
    late, late_sink = _request([1])
    scheduler.submit(late)
    assert str(late_sink.wait().error).startswith("unavailable: ")


def test_a_slow_sink_gets_merged_outputs_in_order(make_scheduler) -> None:
    class SlowSink(Sink):
        def send(self, output: Output) -> None:
            time.sleep(0.02)
            super().send(output)

    scheduler = make_scheduler()
    slow = SlowSink()
    scheduler.submit(Request(prompt_ids=[1], max_tokens=40, sink=slow, temperature=0))
    fast, fast_sink = _request([1], max_tokens=40)
    scheduler.submit(fast)
    assert fast_sink.wait().finish_reason == "length"
    assert slow.wait().finish_reason == "length"
    assert slow.tokens == fast_sink.tokens == [(1 + i) % VOCAB for i in range(1, 41)]
    assert len(slow.outputs) < 40
    assert sum(o.final for o in slow.outputs) == 1


def test_coalesce_merges_tokens_per_request_and_keeps_errors_apart() -> None:
    a, b = Sink(), Sink()
    error = RequestError("internal", "x")
    items = [
        (a, Output([1])),
        (b, Output([7])),
        (a, Output([2])),
        (b, Output([], error=error)),
        (a, Output([3], "length", 1, 3)),
    ]
    merged = coalesce(items)  # type: ignore[arg-type]
    assert merged == [
        (a, Output([1, 2, 3], "length", 1, 3)),
        (b, Output([7])),
        (b, Output([], error=error)),
    ]


def test_slots_are_taken_lowest_first(make_scheduler, decoder) -> None:
    decoder.gate.clear()
    scheduler = make_scheduler()
    sinks = []
    for _ in range(3):
        request, sink = _request([1], max_tokens=2)
        scheduler.submit(request)
        sinks.append(sink)
    decoder.gate.set()
    for sink in sinks:
        sink.wait()
    assert sorted({slot for call in decoder.calls for slot in call}) == [0, 1, 2]


class EvenTokens:
    """A fake grammar: only even tokens, complete after ``length`` of them (stop allowed
    then), finished after ``finish_after`` (0: never)."""

    def __init__(self, length: int, finish_after: int = 0) -> None:
        self.length = length
        self.finish_after = finish_after
        self.seen: list[int] = []

    def allowed(self) -> np.ndarray:
        allowed = np.zeros(VOCAB, dtype=bool)
        allowed[::2] = True
        return allowed

    def accepting(self) -> bool:
        return len(self.seen) >= self.length

    def advance(self, token: int) -> None:
        if token % 2:
            raise RequestError("internal", "odd token")
        self.seen.append(token)

    def finished(self) -> bool:
        return bool(self.finish_after) and len(self.seen) >= self.finish_after


def test_a_constraint_masks_every_sampled_token(make_scheduler) -> None:
    scheduler = make_scheduler()
    constraint = EvenTokens(length=100)
    request, sink = _request([1], max_tokens=6, constraint=constraint)
    free, free_sink = _request([1], max_tokens=6)
    scheduler.submit(request)
    scheduler.submit(free)
    assert sink.wait().finish_reason == "length"
    assert free_sink.wait().finish_reason == "length"
    assert sink.tokens and all(t % 2 == 0 for t in sink.tokens)
    assert constraint.seen == sink.tokens
    assert free_sink.tokens == [2, 3, 4, 5, 6, 7]  # the unconstrained neighbour is untouched


def test_stop_tokens_wait_until_the_grammar_accepts(make_scheduler, decoder) -> None:
    # After a 0 the fake model wants the stop token 1; the grammar needs 4 tokens first.
    scheduler = make_scheduler(eos_token_ids=(1,))
    early, early_sink = _request([0], max_tokens=20, constraint=EvenTokens(length=0))
    late, late_sink = _request([0], max_tokens=20, constraint=EvenTokens(length=4))
    scheduler.submit(early)
    assert early_sink.wait().finish_reason == "stop"
    assert early_sink.tokens == []
    scheduler.submit(late)
    assert late_sink.wait().finish_reason == "stop"
    assert late_sink.tokens == [0, 0, 0, 0]


def test_a_finished_grammar_ends_the_sequence_with_its_last_token(make_scheduler) -> None:
    scheduler = make_scheduler()
    request, sink = _request([1], max_tokens=20, constraint=EvenTokens(0, finish_after=3))
    scheduler.submit(request)
    final = sink.wait()
    assert final.finish_reason == "stop"
    assert len(sink.tokens) == 3 and final.completion_tokens == 3


def test_a_broken_constraint_fails_only_its_sequence(make_scheduler) -> None:
    class Broken(EvenTokens):
        def allowed(self) -> np.ndarray:
            return np.zeros(VOCAB, dtype=bool)  # nothing allowed and not accepting

    scheduler = make_scheduler()
    broken, broken_sink = _request([1], max_tokens=5, constraint=Broken(length=1))
    free, free_sink = _request([1], max_tokens=5)
    scheduler.submit(broken)
    scheduler.submit(free)
    error = broken_sink.wait().error
    assert error is not None and error.kind == "internal"
    assert free_sink.wait().finish_reason == "length"
