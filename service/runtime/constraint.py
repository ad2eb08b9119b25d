"""Grammar-constrained decoding with llguidance: compiled grammars and per-sequence matchers.

:class:`GrammarCompiler` turns a grammar (llguidance Lark, built by ``service.grammar``) into a
matcher over the model's tokenizer. Compiled matchers, with the pre-fill already fed, are cached
by the SHA-256 of grammar and pre-fill (LRU), so a repeated tool set costs one ``deep_copy``.
Each sequence gets its own :class:`GrammarConstraint`: the scheduler asks it for the allowed next
tokens before sampling and feeds it every sampled token. Stop tokens are the scheduler's
business: it allows them exactly when the constraint is accepting.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from llguidance import LLMatcher, LLTokenizer

from service.runtime.scheduler import RequestError


@dataclass
class CompileStats:
    """Cache counters (tests read them)."""

    hits: int = 0
    misses: int = 0


class GrammarCompiler:
    """Compiles grammars for one tokenizer and vocabulary; thread-safe."""

    def __init__(self, tokenizer_json: str, vocab_size: int, cache_size: int = 256) -> None:
        self._tokenizer = LLTokenizer(tokenizer_json, n_vocab=vocab_size)
        self._vocab_size = vocab_size
        self._cache_size = cache_size
        self._cache: OrderedDict[str, LLMatcher] = OrderedDict()
        self._lock = threading.Lock()
        self.stats = CompileStats()

    def constraint(self, grammar: str, prefill_ids: Sequence[int] = ()) -> GrammarConstraint:
        """A fresh constraint for one sequence; ``prefill_ids`` (the end of the prompt) are
        already part of the grammar's text. ``RequestError("invalid")`` for a bad grammar."""
        matcher = self._compiled(grammar, [int(t) for t in prefill_ids]).deep_copy()
        return GrammarConstraint(matcher, self._vocab_size, self._tokenizer.eos_tokens)

    def _compiled(self, grammar: str, prefill_ids: list[int]) -> LLMatcher:
        """The matcher of ``grammar`` that has consumed ``prefill_ids`` (cached together: a
        dialect's pre-fill is the same for every request with the same tools)."""
        key = hashlib.sha256(f"{prefill_ids}\n{grammar}".encode()).hexdigest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                self.stats.hits += 1
                return cached
        matcher = LLMatcher(self._tokenizer, grammar, log_level=0)  # drops the GIL
        if matcher.is_error():
            raise RequestError("invalid", f"the grammar does not compile: {matcher.get_error()}")
        if prefill_ids and not matcher.consume_tokens(prefill_ids):
            raise RequestError("invalid", "the pre-filled prompt tokens do not fit the grammar")
        with self._lock:
            self.stats.misses += 1
            self._cache[key] = matcher
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return matcher


class GrammarConstraint:
    """One sequence's grammar state (see ``service.runtime.scheduler.TokenConstraint``)."""

    def __init__(self, matcher: LLMatcher, vocab_size: int, eos_ids: Sequence[int]) -> None:
        self._matcher = matcher
        self._vocab_size = vocab_size
        self._eos_ids = list(eos_ids)  # llguidance allows them when accepting: the scheduler
        # decides about stop tokens instead
        self._bitmask = np.zeros((vocab_size + 31) // 32, dtype=np.int32)

    def allowed(self) -> np.ndarray:
        """Bool ``[vocab]``: the tokens the grammar allows next."""
        bitmask = self._bitmask
        self._matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        if self._matcher.is_error():
            raise RequestError("internal", f"grammar matcher failed: {self._matcher.get_error()}")
        allowed = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: self._vocab_size]
        allowed = allowed.astype(bool)
        allowed[self._eos_ids] = False
        return allowed

    def accepting(self) -> bool:
        """Whether the text so far is a complete sentence of the grammar."""
        return bool(self._matcher.is_accepting())

    def advance(self, token: int) -> None:
        """Feed one sampled token (never a stop token)."""
        if not self._matcher.consume_token(token):
            raise RequestError("internal", f"grammar matcher failed: {self._matcher.get_error()}")

    def finished(self) -> bool:
        """Whether nothing but a stop token may follow."""
        return bool(self._matcher.is_stopped())
