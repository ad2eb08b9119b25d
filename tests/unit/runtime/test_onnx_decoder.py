"""OnnxDecoder against transformers: prefill and decode steps through the shared-buffer KV cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.runtime.decoder import KVDecoder
from service.runtime.onnx_decoder import OnnxDecoder
from tests.unit.models import QWEN, SMOLLM, packaged_gguf
from tests.unit.onnx_reference import (
    FP32_LOGIT_TOLERANCE,
    PROMPTS,
    export_source,
    packaged_prompts,
    reference_greedy,
    reference_model,
    tiny_hf_model,
)

STEPS = 20
TINY_TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(model.onnx, transformers reference) of a tiny random HF model."""
    folder = tiny_hf_model(tmp_path_factory.mktemp(request.param) / "hf", request.param)
    return export_source(folder, folder.parent / "onnx"), reference_model(folder)


def run_batched(
    decoder: KVDecoder, slots: list[int], prompts: list[list[int]], forced: list[list[int]]
) -> np.ndarray:
    """Prefill every prompt in one step, then decode all rows together, feeding ``forced``
    tokens; returns the logits ``[steps, rows, vocab]``."""
    steps = [decoder.step(slots, prompts)]
    for i in range(len(forced[0]) - 1):
        steps.append(decoder.step(slots, [[tokens[i]] for tokens in forced]))
    return np.stack(steps)


def check_against_reference(
    model_path: Path, reference: Any, prompts: list[list[int]], tolerance: float
) -> None:
    """Batched decode of ``prompts`` (different lengths, non-adjacent slots) vs the reference:
    logits within ``tolerance`` at every step, and the same free-running greedy tokens."""
    expected = [reference_greedy(reference, prompt, STEPS) for prompt in prompts]
    slots = [0, 2, 3][: len(prompts)]  # slot 1 rides along as a dummy row
    decoder = OnnxDecoder(model_path, num_slots=4, max_seq_len=64)
    got = run_batched(decoder, slots, prompts, [tokens for tokens, _ in expected])
    reference_logits = np.stack([logits for _, logits in expected], axis=1)
    assert np.abs(got - reference_logits).max() < tolerance
    assert [decoder.length(s) for s in slots] == [len(p) + STEPS - 1 for p in prompts]

    for slot in slots:
        decoder.reset(slot)
    greedy: list[list[int]] = [[] for _ in prompts]
    logits = decoder.step(slots, prompts)
    for _ in range(STEPS):
        for row, token in enumerate(logits.argmax(-1)):
            greedy[row].append(int(token))
        logits = decoder.step(slots, [[tokens[-1]] for tokens in greedy])
    assert greedy == [tokens for tokens, _ in expected]


@pytest.mark.reference
def test_tiny_decoder_matches_reference(tiny: Any) -> None:
    model_path, reference = tiny
    check_against_reference(model_path, reference, PROMPTS, TINY_TOLERANCE)


@pytest.mark.reference
@pytest.mark.parametrize("chunk", [1, 4])
def test_chunked_prefill_equals_one_shot(tiny: Any, chunk: int) -> None:
    model_path, _ = tiny
    whole = OnnxDecoder(model_path, num_slots=1, max_seq_len=64)
    chunked = OnnxDecoder(model_path, num_slots=1, max_seq_len=64, prefill_chunk=chunk)
    prompt = PROMPTS[2]
    assert np.abs(whole.step([0], [prompt]) - chunked.step([0], [prompt])).max() < 1e-5
    assert np.abs(whole.step([0], [[7]]) - chunked.step([0], [[7]])).max() < 1e-5


@pytest.mark.reference
def test_slots_are_independent(tiny: Any) -> None:
    """Far-apart slots (split into separate runs), a slot left idle while its neighbours decode
    as a dummy row, a slot reused after reset: every row still matches a lone decoder."""
    model_path, _ = tiny
    decoder = OnnxDecoder(model_path, num_slots=8, max_seq_len=64, max_gap=1)
    lone = OnnxDecoder(model_path, num_slots=1, max_seq_len=64)

    def lone_logits(tokens: list[int]) -> np.ndarray:
        lone.reset(0)
        return lone.step([0], [tokens])[0]

    a, b, idle = PROMPTS
    decoder.step([1], [idle])  # slot 1 holds a sequence it does not advance for a while
    decoder.step([0, 2, 7], [a, b, a])
    for token in (5, 6, 7):
        out = decoder.step([7, 0, 2], [[token]] * 3)  # 0 and 2 bridge slot 1; 7 runs alone
        a, b = [*a, token], [*b, token]
    assert np.abs(out[1] - lone_logits(a)).max() < 1e-5
    assert np.abs(out[0] - out[1]).max() < 1e-5
    assert np.abs(out[2] - lone_logits(b)).max() < 1e-5
    resumed = decoder.step([1, 0], [[3], [4]])  # mixed: slot 1 resumes after being a dummy
    assert np.abs(resumed[0] - lone_logits([*idle, 3])).max() < 1e-5
    decoder.reset(2)
    assert decoder.length(2) == 0
    assert np.abs(decoder.step([2], [b])[0] - lone_logits(b)).max() < 1e-5


@pytest.mark.reference
def test_a_burst_of_fresh_prompts_is_prefilled_in_calls_of_bounded_size(tiny: Any) -> None:
    model_path, _ = tiny
    longest = max(len(p) for p in PROMPTS)
    capped = OnnxDecoder(model_path, num_slots=4, max_seq_len=64, prefill_group_tokens=2 * longest)
    whole = OnnxDecoder(model_path, num_slots=4, max_seq_len=64)
    sizes: list[int] = []
    run = capped._run
    capped._run = lambda call: sizes.append(call.count) or run(call)  # type: ignore[method-assign]
    out = capped.step([0, 1, 2], list(PROMPTS))
    assert sizes == [2, 1]
    assert np.abs(out - whole.step([0, 1, 2], list(PROMPTS))).max() < 1e-5


@pytest.mark.reference
def test_attention_scores_of_every_layer_share_one_scratch_buffer(tiny: Any) -> None:
    model_path, _ = tiny
    decoder = OnnxDecoder(model_path, num_slots=2, max_seq_len=64)
    prompt = PROMPTS[0]
    decoder.step([0], [prompt])
    heads = decoder._num_heads
    assert len(decoder._score_outputs) == decoder._num_layers and heads > 0
    assert decoder._scores.size == heads * len(prompt) ** 2  # one layer's, not every layer's
    decoder.step([0, 1], [[5], [6]])
    assert decoder._scores.size == heads * len(prompt) ** 2  # decode rows fit in it


@pytest.mark.reference
def test_step_rejects_bad_rows(tiny: Any) -> None:
    model_path, _ = tiny
    decoder = OnnxDecoder(model_path, num_slots=2, max_seq_len=8)
    assert (decoder.num_slots, decoder.max_seq_len, decoder.vocab_size) == (2, 8, 320)
    with pytest.raises(ValueError, match="exceed"):
        decoder.step([0], [list(range(9))])
    with pytest.raises(ValueError, match="distinct"):
        decoder.step([0, 0], [[1], [2]])
    with pytest.raises(ValueError, match="out of range"):
        decoder.step([2], [[1]])
    with pytest.raises(ValueError, match="positions"):
        OnnxDecoder(model_path, num_slots=1, max_seq_len=257)


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize(("name", "count"), [(SMOLLM, 3), (QWEN, 2)])
def test_packaged_decoder_matches_reference(name: str, count: int, tmp_path: Path) -> None:
    gguf_path = packaged_gguf(name)
    model_path = export_source(gguf_path, tmp_path)
    prompts = packaged_prompts(gguf_path, count)
    check_against_reference(model_path, reference_model(gguf_path), prompts, FP32_LOGIT_TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("name", [SMOLLM])
def test_int4_greedy_agrees_with_fp32(name: str, tmp_path: Path) -> None:
    """Teacher-forced top-1 agreement of int4 with fp32 along fp32's greedy continuation."""
    gguf_path = packaged_gguf(name)
    prompts = packaged_prompts(gguf_path, 3)
    fp32 = OnnxDecoder(export_source(gguf_path, tmp_path / "fp32"), 3, 128)
    int4 = OnnxDecoder(export_source(gguf_path, tmp_path / "int4", "int4"), 3, 128)
    slots = [0, 1, 2]
    ref_logits, q_logits = fp32.step(slots, prompts), int4.step(slots, prompts)
    agree = total = 0
    for _ in range(32):
        tokens = ref_logits.argmax(-1)
        agree += int((q_logits.argmax(-1) == tokens).sum())
        total += len(slots)
        rows = [[int(t)] for t in tokens]
        ref_logits, q_logits = fp32.step(slots, rows), int4.step(slots, rows)
    print(f"int4 top-1 agreement with fp32: {agree}/{total}")
    assert agree / total >= 0.65


@pytest.mark.reference
def test_one_token_prompt_joins_a_decode_batch(tiny: Any) -> None:
    import torch

    model_path, reference = tiny
    decoder = OnnxDecoder(model_path, num_slots=2, max_seq_len=64)
    decoder.step([0], [PROMPTS[0]])
    out = decoder.step([0, 1], [[9], [5]])  # slot 1 is fresh: its prompt is a decode row
    with torch.no_grad():
        expected = [
            reference(torch.tensor([tokens])).logits[0, -1].numpy()
            for tokens in ([*PROMPTS[0], 9], [5])
        ]
    assert np.abs(out - np.stack(expected)).max() < TINY_TOLERANCE
    assert (decoder.length(0), decoder.length(1)) == (len(PROMPTS[0]) + 1, 1)


@pytest.mark.reference
def test_truncated_and_copied_prefixes_continue_like_a_fresh_prompt(tiny: Any) -> None:
    """Prefix-cache moves: a slot cut back to a prefix, and a prefix copied into another slot,
    then fed the rest, give the logits of prefilling the whole prompt."""
    model_path, _ = tiny
    decoder = OnnxDecoder(model_path, num_slots=3, max_seq_len=64)
    lone = OnnxDecoder(model_path, num_slots=1, max_seq_len=64)
    prompt = PROMPTS[2]
    other = [*prompt[:12], 99, 98, 97]
    decoder.step([0], [prompt])
    decoder.step([0], [[5]])  # a generated token, then a new prompt sharing 12 tokens
    assert decoder.can_copy_prefix
    decoder.copy_prefix(0, 2, 12)
    decoder.truncate(0, 12)
    assert (decoder.length(0), decoder.length(2)) == (12, 12)
    out = decoder.step([0, 2], [other[12:], other[12:]])
    expected = lone.step([0], [other])[0]
    assert np.abs(out - expected).max() < 1e-5
    with pytest.raises(ValueError):
        decoder.truncate(1, 3)
    with pytest.raises(ValueError):
        decoder.copy_prefix(0, 0, 4)


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_cuda_that_fails_to_load_falls_back_to_the_cpu(
    tiny: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CUDA listed as available but not loadable (here: a CPU-only onnxruntime that claims
    it): the session runs on the CPU, and so must the KV cache and bindings."""
    import onnxruntime as ort

    model_path, _ = tiny
    available = ort.get_available_providers()
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *available]
    )
    monkeypatch.setattr(ort, "preload_dlls", lambda: None, raising=False)
    decoder = OnnxDecoder(model_path, num_slots=1, max_seq_len=64, provider="cuda")
    lone = OnnxDecoder(model_path, num_slots=1, max_seq_len=64)
    prompt = [1, 2, 3, 4]
    np.testing.assert_array_equal(decoder.step([0], [prompt]), lone.step([0], [prompt]))
