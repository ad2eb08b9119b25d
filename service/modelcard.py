"""The model card: everything the service and the Triton model need to know about a built model.

Written by the model-repository builder as ``model_card.json`` next to ``model.onnx``,
``tokenizer.json`` and ``chat_template.jinja`` in ``<repository>/<triton model>/1/``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

CARD_FILE = "model_card.json"
TOKENIZER_FILE = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
ONNX_FILE = "model.onnx"

Precision = Literal["fp32", "fp16", "int8", "int4"]
ToolDialect = Literal["hermes", "smollm2", "llama3_json", "mistral"]


@dataclass(frozen=True)
class ModelCard:
    """Facts about one built model (architecture numbers, tokens, template, dialect)."""

    name: str  # served model id, e.g. "qwen2.5-coder-0.5b-instruct"
    architecture: str  # "qwen2" | "llama" | "mistral"
    precision: Precision
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    context_length: int  # the model's trained context
    eos_token_id: int
    stop_token_ids: list[int]  # every id that ends a turn (eos included)
    tool_dialect: ToolDialect
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    add_bos_token: bool = False
    special_tokens: dict[str, int] = field(default_factory=dict)  # content -> id
    source: dict[str, Any] = field(default_factory=dict)  # where the weights came from
    onnx_file: str = ONNX_FILE
    tokenizer_file: str = TOKENIZER_FILE
    chat_template_file: str = CHAT_TEMPLATE_FILE
    extra: dict[str, Any] = field(default_factory=dict)  # converter-specific facts (graph I/O)
    # Sampling the model's authors recommend (their generation_config): used for the
    # temperature / top_p / top_k a request leaves out, as vLLM does by default.
    sampling_defaults: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: Path) -> ModelCard:
        """Read ``model_card.json`` from a built model directory."""
        data = json.loads((Path(model_dir) / CARD_FILE).read_text(encoding="utf-8"))
        return cls(**data)

    def save(self, model_dir: Path) -> None:
        """Write ``model_card.json`` into ``model_dir``."""
        text = json.dumps(asdict(self), indent=2, sort_keys=True)
        (Path(model_dir) / CARD_FILE).write_text(text + "\n", encoding="utf-8")
