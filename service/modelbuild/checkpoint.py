"""Read decoder weights from a GGUF file or a Hugging Face folder, under Hugging Face names.

Every tensor comes back as float32 in the Hugging Face layout (linear weights ``[out, in]``), so
the exporter never needs to know where the weights came from. Tensors are read lazily, one at a
time, so a multi-gigabyte model is never held in memory all at once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.modelbuild.errors import BuildError

logger = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "mistral")


@dataclass(frozen=True)
class ModelConfig:
    """The numbers that define a llama-family decoder."""

    architecture: str  # "llama" | "qwen2" | "mistral"
    num_layers: int
    hidden_size: int
    intermediate_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    rope_theta: float
    rms_norm_eps: float
    context_length: int
    tie_word_embeddings: bool
    attention_bias: bool
    # RoPE frequency divisors, one per rotary pair (llama3 / linear scaling); None: plain RoPE
    rope_freq_factors: tuple[float, ...] | None = None


def layer_tensor_names(config: ModelConfig, layer: int) -> list[str]:
    """The Hugging Face names a decoder layer needs (biases only when the model has them)."""
    prefix = f"model.layers.{layer}"
    names = [f"{prefix}.input_layernorm.weight", f"{prefix}.post_attention_layernorm.weight"]
    names += [f"{prefix}.self_attn.{p}_proj.weight" for p in ("q", "k", "v", "o")]
    names += [f"{prefix}.mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    if config.attention_bias:
        names += [f"{prefix}.self_attn.{p}_proj.bias" for p in ("q", "k", "v")]
    return names


def required_tensor_names(config: ModelConfig) -> list[str]:
    """Every tensor the exporter reads."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not config.tie_word_embeddings:
        names.append("lm_head.weight")
    for layer in range(config.num_layers):
        names += layer_tensor_names(config, layer)
    return names


class Checkpoint(ABC):
    """Decoder weights under Hugging Face tensor names, read on demand as float32."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    @abstractmethod
    def names(self) -> list[str]:
        """Every tensor name the checkpoint holds."""

    @abstractmethod
    def tensor(self, name: str) -> np.ndarray:
        """One tensor as a float32 array (linear weights ``[out, in]``)."""

    def check_complete(self) -> None:
        """Raise ``BuildError`` naming the first tensor the exporter needs but cannot find."""
        present = set(self.names())
        missing = [name for name in required_tensor_names(self.config) if name not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise BuildError(f"the checkpoint lacks tensor {missing[0]}{more}")


def check_architecture(architecture: str) -> None:
    """Raise ``BuildError`` for an architecture the exporter cannot build."""
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise BuildError(
            f"unsupported architecture {architecture!r}: "
            f"supported are {', '.join(SUPPORTED_ARCHITECTURES)}"
        )


def load_checkpoint(path: Path) -> Checkpoint:
    """Open a ``.gguf`` file or a Hugging Face folder (``config.json`` + ``*.safetensors``)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".gguf":
        from service.modelbuild.gguf_checkpoint import GGUFCheckpoint

        checkpoint: Checkpoint = GGUFCheckpoint(path)
    elif path.is_dir():
        from service.modelbuild.hf_checkpoint import HFCheckpoint

        checkpoint = HFCheckpoint(path)
    else:
        raise BuildError(f"{path} is neither a .gguf file nor a Hugging Face folder")
    checkpoint.check_complete()
    logger.info("loaded checkpoint %s: %s", path, checkpoint.config)
    return checkpoint
