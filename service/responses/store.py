"""The bounded in-memory store behind ``previous_response_id`` (one per process: per replica)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_SIZE = 1000
DEFAULT_TTL_S = 3600.0


@dataclass(frozen=True)
class StoredResponse:
    """What a later request continues from: the conversation so far and the response itself."""

    conversation: tuple[Mapping[str, Any], ...]  # chat messages, input and answer, no instructions
    response: Mapping[str, Any]


class ResponseStore:
    """At most ``size`` responses, each kept ``ttl_s`` seconds; the oldest go first.

    ``size`` 0 keeps nothing. Single event loop only (no locking).
    """

    def __init__(
        self,
        size: int = DEFAULT_SIZE,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, StoredResponse]] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)

    def put(
        self,
        response_id: str,
        conversation: Sequence[Mapping[str, Any]],
        response: Mapping[str, Any],
    ) -> None:
        """Keep a response; evicts expired entries, then the oldest beyond ``size``."""
        if self._size <= 0:
            return
        self._expire()
        stored = StoredResponse(tuple(conversation), response)
        self._entries[response_id] = (self._clock() + self._ttl_s, stored)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        """The stored response, or ``None`` when unknown, evicted or expired."""
        self._expire()
        entry = self._entries.get(response_id)
        return entry[1] if entry is not None else None

    def _expire(self) -> None:
        now = self._clock()
        while self._entries:
            expires_at, _ = next(iter(self._entries.values()))
            if expires_at > now:
                return
            self._entries.popitem(last=False)
