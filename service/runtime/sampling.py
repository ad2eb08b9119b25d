"""Token sampling over a batch of logits rows: greedy, temperature, top-k, top-p, seeded.

Every row draws from its own ``numpy.random.Generator`` (one uniform number per sampled token),
so a request with a fixed seed reproduces its tokens whatever else shares the batch. Greedy rows
(temperature 0) are one vectorized ``argmax`` and draw nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.triton_contract import SAMPLING_DEFAULTS

# The nucleus is searched among this many best candidates first; a full sort only when their
# probability mass is below top_p (exact either way).
_NUCLEUS_CANDIDATES = 256


@dataclass(frozen=True)
class SamplingConfig:
    """How one row picks its next token."""

    temperature: float = SAMPLING_DEFAULTS.temperature  # 0 means greedy
    top_p: float = SAMPLING_DEFAULTS.top_p  # smallest set of tokens whose probability reaches it
    top_k: int = SAMPLING_DEFAULTS.top_k  # 0 means no cut

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1


def make_rng(seed: int | None) -> np.random.Generator:
    """A generator seeded from the request's seed (fresh OS entropy when there is none)."""
    return np.random.default_rng(seed)


def sample(
    logits: np.ndarray,
    configs: Sequence[SamplingConfig],
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """Pick one token id per row of float32 ``logits [rows, vocab]``; returns int64 ``[rows]``."""
    rows = logits.shape[0]
    if len(configs) != rows or len(rngs) != rows:
        raise ValueError("sample needs one config and one generator per logits row")
    tokens = np.empty(rows, dtype=np.int64)
    greedy = np.fromiter((c.greedy for c in configs), dtype=bool, count=rows)
    if greedy.any():
        tokens[greedy] = np.argmax(logits[greedy], axis=-1)
    for row in np.flatnonzero(~greedy):
        tokens[row] = sample_row(logits[row], configs[row], rngs[row])
    return tokens


def sample_row(logits: np.ndarray, config: SamplingConfig, rng: np.random.Generator) -> int:
    """Sample one token from a 1-D logits row with temperature, top-k and top-p."""
    ids, scores = _top_k(logits, config.top_k)
    scaled = scores.astype(np.float64) / config.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if config.top_p < 1.0:
        ids, probs = _nucleus(ids, probs, config.top_p)
    cumulative = np.cumsum(probs)
    pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return int(ids[min(pick, len(ids) - 1)])


def _top_k(logits: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate ids and their logits: the ``top_k`` best, or the whole vocabulary."""
    if 0 < top_k < logits.shape[0]:
        ids = np.argpartition(logits, -top_k)[-top_k:]
        return ids, logits[ids]
    return np.arange(logits.shape[0]), logits


def _nucleus(ids: np.ndarray, probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest most-probable prefix whose mass reaches ``top_p``, sorted by probability."""
    order = _descending(probs, top_p)
    sorted_probs = probs[order]
    cumulative = np.cumsum(sorted_probs)
    keep = int(np.searchsorted(cumulative, top_p, side="left")) + 1
    keep = min(keep, len(order))
    return ids[order[:keep]], sorted_probs[:keep]


def _descending(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Indices of ``probs`` sorted descending, enough of them to cover ``top_p``."""
    if len(probs) > _NUCLEUS_CANDIDATES:
        best = np.argpartition(probs, -_NUCLEUS_CANDIDATES)[-_NUCLEUS_CANDIDATES:]
        best = best[np.argsort(-probs[best], kind="stable")]
        if probs[best].sum() >= top_p:
            return best
    return np.argsort(-probs, kind="stable")
