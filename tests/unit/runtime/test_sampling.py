"""Sampling: greedy, temperature, top-k, top-p and per-request seeds."""

from __future__ import annotations

import numpy as np
import pytest

from service.runtime.sampling import SamplingConfig, make_rng, sample, sample_row

VOCAB = 1000


def _logits(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, VOCAB)).astype(np.float32) * 3


def test_greedy_rows_take_the_argmax() -> None:
    logits = _logits(3)
    configs = [SamplingConfig(temperature=0.0)] * 3
    picked = sample(logits, configs, [make_rng(None)] * 3)
    assert picked.tolist() == np.argmax(logits, axis=-1).tolist()


def test_top_k_one_is_greedy() -> None:
    logits = _logits(1)
    picked = sample(logits, [SamplingConfig(temperature=5.0, top_k=1)], [make_rng(1)])
    assert picked[0] == np.argmax(logits[0])


def test_top_k_only_picks_among_the_k_best() -> None:
    row = _logits(1)[0]
    best = set(np.argsort(-row)[:5].tolist())
    rng = make_rng(7)
    picks = {sample_row(row, SamplingConfig(temperature=10.0, top_k=5), rng) for _ in range(300)}
    assert picks <= best
    assert len(picks) == 5


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    row = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    rng = make_rng(3)
    picks = {sample_row(row, SamplingConfig(temperature=1.0, top_p=0.75), rng) for _ in range(500)}
    assert picks == {0, 1}


def test_top_p_over_a_large_vocabulary_matches_a_full_sort() -> None:
    row = _logits(1, seed=5)[0] * 0.2  # flat enough that the nucleus is wide
    probs = np.exp(row - row.max())
    probs /= probs.sum()
    order = np.argsort(-probs)
    keep = int(np.searchsorted(np.cumsum(probs[order]), 0.9)) + 1
    allowed = set(order[:keep].tolist())
    rng = make_rng(11)
    picks = {sample_row(row, SamplingConfig(top_p=0.9), rng) for _ in range(2000)}
    assert picks <= allowed
    assert keep > 256  # exercised the full-sort fallback


def test_temperature_follows_the_distribution() -> None:
    row = np.log(np.array([0.7, 0.2, 0.1], dtype=np.float32))
    rng = make_rng(5)
    counts = np.bincount(
        [sample_row(row, SamplingConfig(temperature=1.0), rng) for _ in range(5000)], minlength=3
    )
    assert np.allclose(counts / 5000, [0.7, 0.2, 0.1], atol=0.03)


def test_a_seed_reproduces_its_tokens_whatever_shares_the_batch() -> None:
    logits = _logits(4)
    config = SamplingConfig(temperature=1.0, top_p=0.95)

    def run(rows: list[int], seeds: list[int | None]) -> list[int]:
        rngs = [make_rng(s) for s in seeds]
        out = [sample(logits[rows], [config] * len(rows), rngs) for _ in range(20)]
        return [int(step[0]) for step in out]

    alone = run([0], [42])
    crowded = run([0, 1, 2, 3], [42, None, 1, 2])
    assert alone == crowded
    assert run([0], [43]) != alone


def test_rows_need_one_config_and_generator_each() -> None:
    with pytest.raises(ValueError):
        sample(_logits(2), [SamplingConfig()], [make_rng(0)])
