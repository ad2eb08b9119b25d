"""Incremental detokenization and stop strings, over the real Qwen tokenizer."""

from __future__ import annotations

import pytest

from service.detokenize import TextAccumulator
from service.prompting.tokenizer import PromptTokenizer
from tests.unit.served import served_model


@pytest.fixture(scope="module")
def tokenizer() -> PromptTokenizer:
    return served_model("llm").tokenizer


def _feed(tokenizer: PromptTokenizer, text: str, stop: list[str], step: int) -> TextAccumulator:
    accumulator = TextAccumulator(tokenizer, stop)
    ids = tokenizer.encode_text(text)
    for start in range(0, len(ids), step):
        accumulator.add(ids[start : start + step])
    accumulator.finish()
    return accumulator


@pytest.mark.parametrize("step", [1, 2, 3, 5, 8])
def test_one_token_at_a_time_equals_full_decode(tokenizer: PromptTokenizer, step: int) -> None:
    text = "Wetter in 東京: 🌦 sunny, 20°C — naïve café <tool_call> ok"
    accumulator = _feed(tokenizer, text, [], step)
    assert accumulator.text == text and not accumulator.stopped
    assert accumulator.token_count == len(tokenizer.encode_text(text))


@pytest.mark.parametrize("step", [1, 3, 8])
def test_stop_strings_cut_at_the_first_occurrence(tokenizer: PromptTokenizer, step: int) -> None:
    accumulator = _feed(
        tokenizer, "alpha beta\n\nObservation: gamma STOP", ["STOP", "\n\nObs"], step
    )
    assert accumulator.text == "alpha beta" and accumulator.stopped


def test_stop_string_spanning_tokens_and_nothing_after_stop(tokenizer: PromptTokenizer) -> None:
    accumulator = TextAccumulator(tokenizer, ["東京"])
    for token in tokenizer.encode_text("in 東京 and more"):
        accumulator.add([token])
    assert accumulator.text == "in " and accumulator.stopped
    assert accumulator.token_count == len(tokenizer.encode_text("in 東京 and more"))


def test_incomplete_character_is_held_then_flushed(tokenizer: PromptTokenizer) -> None:
    ids = tokenizer.encode_text("🌦")
    accumulator = TextAccumulator(tokenizer)
    accumulator.add(ids[:1])
    assert "\ufffd" not in accumulator.text
    accumulator.finish()
    assert accumulator.text == tokenizer.decode(ids[:1])
