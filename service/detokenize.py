"""Incremental detokenization with OpenAI ``stop`` strings, linear in the output length.

Token ids are decoded in a sliding window (as in TGI and vLLM): only the ids since the last
emitted text are decoded again, and text that ends in an incomplete UTF-8 sequence (``U+FFFD``)
waits for the next token. Stop strings are searched only in the new text plus the few characters
before it that could start a match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from service.prompting.tokenizer import PromptTokenizer


@dataclass
class TextAccumulator:
    """The text of one sequence so far; ``stopped`` once a stop string appeared."""

    tokenizer: PromptTokenizer
    stop: Sequence[str] = ()
    text: str = ""
    stopped: bool = False
    token_count: int = 0
    _ids: list[int] = field(default_factory=list)
    _prefix: int = 0  # ids before this are fully emitted and outside the window
    _read: int = 0  # ids before this are emitted
    _finished: bool = False

    def add(self, ids: Sequence[int]) -> None:
        """Append generated ids; truncates ``text`` at a stop string and sets ``stopped``."""
        self.token_count += len(ids)
        if self.stopped or not ids:
            return
        self._ids.extend(ids)
        self._emit(final=False)

    def finish(self) -> None:
        """Emit text still held back for an incomplete character (generation ended)."""
        if not self.stopped and self._read < len(self._ids):
            self._emit(final=True)
        self._finished = True

    @property
    def settled(self) -> int:
        """How much of ``text`` no later token can change: all of it once stopped or
        finished, else up to a tail that may still begin a stop string."""
        if self.stopped or self._finished:
            return len(self.text)
        overlap = 0
        for stop in self.stop:
            for length in range(min(len(stop) - 1, len(self.text)), overlap, -1):
                if self.text.endswith(stop[:length]):
                    overlap = length
                    break
        return len(self.text) - overlap

    def _emit(self, *, final: bool) -> None:
        before = self.tokenizer.decode(self._ids[self._prefix : self._read])
        window = self.tokenizer.decode(self._ids[self._prefix :])
        if len(window) <= len(before) or (window.endswith("\ufffd") and not final):
            return
        searched_from = max(0, len(self.text) - max(map(len, self.stop), default=0) + 1)
        self.text += window[len(before) :]
        self._prefix, self._read = self._read, len(self._ids)
        self._cut_at_stop(searched_from)

    def _cut_at_stop(self, start: int) -> None:
        hits = [i for i in (self.text.find(stop, start) for stop in self.stop) if i != -1]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True
