"""Parameters of the Triton ``llm`` model (``config.pbtxt`` ``parameters``), parsed and checked."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, fields
from typing import Any

import onnxruntime as ort

logger = logging.getLogger(__name__)

PROVIDERS = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class LlmConfig:
    """How the ``llm`` model sizes its KV cache, queue and ONNX Runtime session."""

    max_active_sequences: int = 16  # KV slots: sequences decoded together in one batch
    max_seq_len: int = 2048  # KV capacity of one slot: prompt + generated tokens
    max_total_kv_tokens: int = 0  # admission budget over all slots; 0: slots * max_seq_len
    max_queue: int = 64  # waiting requests beyond this are rejected as "overloaded"
    prefill_chunk: int = 512  # prompt tokens fed per sequence per step
    intra_op_threads: int = 0  # ONNX Runtime threads; 0: physical cores
    execution_provider: str = "auto"  # auto | cpu | cuda
    grammar_cache_size: int = 256  # compiled grammars kept (LRU, keyed by content)
    prefix_cache: int = 1  # 1: reuse the KV of earlier prompts sharing a prefix; 0: off

    @classmethod
    def from_triton(cls, parameters: dict[str, Any]) -> LlmConfig:
        """Read ``{"key": {"string_value": "..."}}`` as in Triton's model config JSON."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in parameters.items():
            if key not in known:
                logger.warning("ignoring unknown llm parameter %r", key)
                continue
            text = value["string_value"] if isinstance(value, dict) else str(value)
            values[key] = text.strip() if known[key].type == "str" else int(text)
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        """Raise ``ValueError`` for values the model cannot run with."""
        for name in (
            "max_active_sequences",
            "max_seq_len",
            "max_queue",
            "prefill_chunk",
            "grammar_cache_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"llm parameter {name} must be at least 1")
        if self.prefix_cache not in (0, 1):
            raise ValueError("llm parameter prefix_cache must be 0 (off) or 1 (on)")
        if self.max_total_kv_tokens < 0 or self.intra_op_threads < 0:
            raise ValueError("llm parameters max_total_kv_tokens and intra_op_threads must be >= 0")
        if self.execution_provider not in PROVIDERS:
            raise ValueError(f"llm parameter execution_provider must be one of {PROVIDERS}")

    def provider(self) -> str:
        """``cpu`` or ``cuda``; ``auto`` takes CUDA when ONNX Runtime has it and a GPU exists."""
        if self.execution_provider != "auto":
            return self.execution_provider
        has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        return "cuda" if has_cuda and os.path.exists("/dev/nvidia0") else "cpu"
