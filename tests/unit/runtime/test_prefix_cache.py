"""The scheduler's prefix cache over the fake decoder: hits, identical tokens, LRU eviction,
copies from busy slots, and a consistent cache after cancellation and failures."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from service.runtime.prefix_cache import COMPUTED_TAIL, MIN_REUSE_TOKENS, SlotContents
from service.runtime.scheduler import Output, Scheduler, SchedulerConfig
from tests.unit.runtime.test_scheduler import FakeDecoder, _request, _until

PROMPT = [(7 * i + 3) % 40 for i in range(40)]  # VOCAB is 50


@pytest.fixture
def schedulers() -> Iterator[object]:
    made: list[Scheduler] = []

    def make(num_slots: int = 4, **config: object) -> tuple[Scheduler, FakeDecoder]:
        decoder = FakeDecoder(num_slots=num_slots, max_seq_len=128)
        decoder.whole_context = True
        scheduler = Scheduler(decoder, SchedulerConfig(**config))  # type: ignore[arg-type]
        made.append(scheduler)
        return scheduler, decoder

    yield make
    for scheduler in made:
        scheduler.shutdown()


def run(scheduler: Scheduler, prompt: list[int], max_tokens: int = 6) -> Output:
    request, sink = _request(prompt, max_tokens=max_tokens)
    scheduler.submit(request)
    final = sink.wait()
    return Output(sink.tokens, final.finish_reason, cached_tokens=final.cached_tokens)


def uncached(schedulers, prompt: list[int], max_tokens: int = 6) -> list[int]:
    scheduler, _ = schedulers(prefix_cache=False)
    return run(scheduler, prompt, max_tokens).token_ids


def test_a_repeated_prompt_is_served_from_the_cache_with_identical_tokens(schedulers) -> None:
    scheduler, decoder = schedulers()
    first = run(scheduler, PROMPT)
    second = run(scheduler, PROMPT)
    assert first.cached_tokens == 0
    assert second.cached_tokens == len(PROMPT) - COMPUTED_TAIL
    assert first.token_ids == second.token_ids == uncached(schedulers, PROMPT)
    prefills = [max(call.values()) for call in decoder.calls if max(call.values()) > 1]
    assert prefills == [len(PROMPT), COMPUTED_TAIL]  # the second computed only its tail


def test_the_first_token_already_reports_the_cached_tokens(schedulers) -> None:
    """A client that stops reading early (a stop string, a dropped call) never sees the final
    output, so the first output carries the count too."""
    scheduler, _ = schedulers()
    run(scheduler, PROMPT)
    request, sink = _request(PROMPT, max_tokens=6)
    scheduler.submit(request)
    sink.wait()
    first = next(output for output in sink.outputs if output.token_ids)
    assert first.cached_tokens == len(PROMPT) - COMPUTED_TAIL


def test_a_shared_prefix_prefills_only_the_new_suffix(schedulers) -> None:
    scheduler, decoder = schedulers()
    run(scheduler, PROMPT)
    other = [*PROMPT[:30], 1, 2, 3, 4]
    got = run(scheduler, other)
    assert got.cached_tokens == 30
    assert decoder.calls[-6] == {0: 4}  # the suffix, into the slot that held the prefix
    assert got.token_ids == uncached(schedulers, other)


def test_a_follow_up_turn_reuses_the_prompt_but_not_the_generated_answer(schedulers) -> None:
    scheduler, _ = schedulers()
    answer = run(scheduler, PROMPT).token_ids
    follow_up = [*PROMPT, *answer, 5, 6]
    got = run(scheduler, follow_up)
    assert got.cached_tokens == len(PROMPT)
    assert got.token_ids == uncached(schedulers, follow_up)


def test_short_matches_are_not_reused(schedulers) -> None:
    scheduler, _ = schedulers()
    run(scheduler, PROMPT)
    assert run(scheduler, [*PROMPT[: MIN_REUSE_TOKENS - 1], 1, 1]).cached_tokens == 0


def test_least_recently_used_content_is_evicted_first(schedulers) -> None:
    scheduler, _ = schedulers(num_slots=2)
    a, b, c = ([t] * 20 + PROMPT[:20] for t in (1, 2, 3))
    for prompt in (a, b, c):  # c evicts a (used longest ago), not b
        assert run(scheduler, prompt).cached_tokens == 0
    assert run(scheduler, b).cached_tokens == len(b) - COMPUTED_TAIL
    assert run(scheduler, a).cached_tokens == 0


def test_cache_off_never_reuses(schedulers) -> None:
    scheduler, _ = schedulers(prefix_cache=False)
    run(scheduler, PROMPT)
    assert run(scheduler, PROMPT).cached_tokens == 0


def test_a_busy_slot_prefix_is_copied_into_a_free_slot(schedulers) -> None:
    scheduler, decoder = schedulers(num_slots=2)
    decoder.delay_s = 0.002
    long_request, long_sink = _request(PROMPT, max_tokens=100)
    scheduler.submit(long_request)
    _until(lambda: len(long_sink.outputs) >= 2)
    other = [*PROMPT[:-1], 9]
    got = run(scheduler, other)
    assert decoder.copies == [(0, 1, len(PROMPT) - COMPUTED_TAIL)]
    assert got.cached_tokens == len(PROMPT) - COMPUTED_TAIL
    long_sink.cancelled = True
    long_sink.wait()
    assert got.token_ids == uncached(schedulers, other)


def test_cancelled_mid_prefill_leaves_a_consistent_cache(schedulers) -> None:
    scheduler, decoder = schedulers(prefill_chunk=8)
    decoder.delay_s = 0.01
    request, sink = _request(PROMPT, max_tokens=6)
    scheduler.submit(request)
    _until(lambda: len(decoder.calls) >= 2)
    sink.cancelled = True
    assert sink.wait().finish_reason == "cancelled"
    held = decoder.length(0)
    assert 0 < held < len(PROMPT) and decoder.contents[0] == PROMPT[:held]
    decoder.delay_s = 0
    got = run(scheduler, PROMPT)
    assert got.cached_tokens == held
    assert got.token_ids == uncached(schedulers, PROMPT)


def test_a_failed_step_forgets_the_slot_content(schedulers) -> None:
    scheduler, decoder = schedulers()
    run(scheduler, PROMPT)
    decoder.fail_at_rows = 1
    request, sink = _request([*PROMPT, 1], max_tokens=3)
    scheduler.submit(request)
    assert sink.wait().error is not None
    assert run(scheduler, PROMPT).cached_tokens == 0


def test_shared_never_counts_uncomputed_or_last_tokens() -> None:
    contents = SlotContents(2)
    contents.record(0, [1, 2, 3, 4, 5])
    prompt = np.array([1, 2, 3, 4, 5])
    assert contents.shared(0, prompt, cached=5) == 5 - COMPUTED_TAIL
    assert contents.shared(0, prompt, cached=2) == 2
    assert contents.shared(0, np.array([1, 2, 9, 4, 5, 6]), cached=5) == 2
    assert contents.shared(1, prompt, cached=0) == 0
