"""The seam between the decode scheduler and the ONNX model: a KV-cached decoder with slots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class KVDecoder(Protocol):
    """A decoder over a preallocated KV cache holding one slot per sequence.

    A slot's cache grows as tokens are appended with :meth:`step`, is emptied by :meth:`reset`
    and cut back to a prefix by :meth:`truncate` (the keys/values of that prefix stay valid).
    Implementations decide how to batch rows internally (e.g. prefill rows and decode rows in
    separate graph runs); callers only see per-row logits.
    """

    @property
    def num_slots(self) -> int:
        """How many sequences can hold a KV cache at once."""
        ...

    @property
    def max_seq_len(self) -> int:
        """Capacity of one slot in tokens (prompt + generated)."""
        ...

    @property
    def vocab_size(self) -> int:
        """Width of the logits rows."""
        ...

    def length(self, slot: int) -> int:
        """Tokens currently cached in ``slot``."""
        ...

    def step(self, slots: Sequence[int], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        """Append ``tokens[i]`` to the sequence in ``slots[i]``; return the logits of each row's
        last new token as float32 ``[len(slots), vocab_size]``. Slots are distinct."""
        ...

    def reset(self, slot: int) -> None:
        """Forget the sequence in ``slot`` (its length becomes 0)."""
        ...

    def truncate(self, slot: int, length: int) -> None:
        """Keep only the first ``length`` cached tokens of ``slot`` (a prefix-cache hit)."""
        ...

    @property
    def can_copy_prefix(self) -> bool:
        """Whether :meth:`copy_prefix` is available (it is a host memory copy)."""
        ...

    def copy_prefix(self, source: int, slot: int, length: int) -> None:
        """Make ``slot`` hold the first ``length`` cached tokens of ``source``."""
        ...
