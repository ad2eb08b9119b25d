"""Which prompt tokens each KV slot holds, so a new prompt can start from a slot that already
holds its beginning (a prefix cache over the preallocated per-slot KV cache).

A slot keeps its keys/values after its request ends; :class:`SlotContents` records the prompt
token ids they belong to. On admission the scheduler asks for the slot whose content shares the
longest prefix with the new prompt and prefills only the rest. Free slots nobody matches are
reused least recently used first, so the prompts seen last (a tool set repeated by every turn)
survive. The cache lives inside the KV slots, so it never grows memory.

Only prompt tokens are kept, and a hit always leaves the prompt's last two tokens to compute:
ONNX Runtime's multi-row (prefill) kernels give every row bit-identical results whatever the
chunking, but its one-row (decode) kernels differ from them (SmolLM2 int8: logits up to 0.7
apart), so keys/values of generated tokens, or a one-token suffix, would change greedy answers
against an uncached run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

COMPUTED_TAIL = 2  # prompt tokens a hit always leaves to compute (a multi-row prefill)
MIN_REUSE_TOKENS = 16  # a shorter shared prefix is not worth evicting another slot's content
COPY_MARGIN_TOKENS = 32  # copy from a busy slot only when it saves this much more than a free one


@dataclass(frozen=True)
class Placement:
    """Where a prompt goes: ``slot``, of which the first ``reuse`` tokens are already cached,
    copied from ``source`` first when it is not ``None``."""

    slot: int
    reuse: int = 0
    source: int | None = None


class SlotContents:
    """The token ids behind each slot's cached keys/values, and when each slot was last used."""

    def __init__(self, num_slots: int) -> None:
        self._ids = [np.empty(0, dtype=np.int64) for _ in range(num_slots)]
        self._used = [0] * num_slots
        self._clock = 0

    def record(self, slot: int, ids: Sequence[int]) -> None:
        """``slot`` holds (or will hold, as it is prefilled) the keys/values of ``ids``."""
        self._ids[slot] = np.asarray(ids, dtype=np.int64)
        self._clock += 1
        self._used[slot] = self._clock

    def forget(self, slot: int) -> None:
        """``slot``'s content is unknown or gone."""
        self._ids[slot] = np.empty(0, dtype=np.int64)
        self._used[slot] = 0

    def tokens(self, slot: int) -> int:
        """How many token ids are recorded for ``slot``."""
        return len(self._ids[slot])

    def shared(self, slot: int, prompt: np.ndarray, cached: int) -> int:
        """Leading tokens of ``prompt`` whose keys/values ``slot`` holds (its first ``cached``
        tokens are computed), leaving at least the prompt's last :data:`COMPUTED_TAIL`."""
        ids = self._ids[slot]
        n = min(len(ids), cached, len(prompt) - COMPUTED_TAIL)
        if n <= 0:
            return 0
        differ = np.flatnonzero(ids[:n] != prompt[:n])
        return int(differ[0]) if len(differ) else n

    def place(
        self,
        prompt: Sequence[int],
        free: Iterable[int],
        busy: Iterable[int],
        cached: Callable[[int], int],
        can_copy: bool,
    ) -> Placement:
        """The best slot among ``free`` for ``prompt``: the free slot sharing the longest prefix
        (at least :data:`MIN_REUSE_TOKENS`), or the least recently used free slot, filled with
        a copy of a ``busy`` slot's prefix when that saves :data:`COPY_MARGIN_TOKENS` more.
        ``cached(slot)`` is how many of a slot's tokens are computed."""
        ids = np.asarray(prompt, dtype=np.int64)
        free = sorted(free)
        best_free, best_len = free[0], 0
        for slot in free:
            n = self.shared(slot, ids, cached(slot))
            if n > best_len:
                best_free, best_len = slot, n
        if best_len < MIN_REUSE_TOKENS:
            best_len = 0
        if can_copy:
            source, source_len = None, 0
            for slot in busy:
                n = self.shared(slot, ids, cached(slot))
                if n > source_len:
                    source, source_len = slot, n
            if source is not None and source_len >= best_len + COPY_MARGIN_TOKENS:
                return Placement(self._least_recent(free), source_len, source)
        if best_len:
            return Placement(best_free, best_len)
        return Placement(self._least_recent(free))

    def _least_recent(self, free: list[int]) -> int:
        """The free slot used longest ago (never-used ones first, lowest slot on ties)."""
        return min(free, key=lambda slot: (self._used[slot], slot))
