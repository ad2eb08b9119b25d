"""A GGUF file as a :class:`Checkpoint`: metadata to config, GGUF to HF names, dequantizing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from gguf.quants import dequantize

from service.modelbuild.checkpoint import Checkpoint, ModelConfig, check_architecture
from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_file import GGUFTensor, read_gguf

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_LAYER_RE = re.compile(r"blk\.(\d+)\.(.+)")
# llama.cpp stores these models' q/k rows interleaved for its rotary layout (convert_hf_to_gguf).
_PERMUTED_ARCHITECTURES = ("llama", "mistral")


def hf_name(gguf_name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor, or None for tensors the exporter ignores."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _LAYER_RE.fullmatch(gguf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return None


def unpermute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation, back to the half-rotation (NeoX) layout HF uses."""
    rows = weight.shape[0]
    shaped = weight.reshape(heads, rows // heads // 2, 2, *weight.shape[1:])
    return shaped.swapaxes(1, 2).reshape(weight.shape)


class GGUFCheckpoint(Checkpoint):
    """Weights and config read from one GGUF file (memory-mapped; tensors dequantized on demand)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._metadata, self._raw_tensors = read_gguf(path)
        except (ValueError, OSError) as error:
            raise BuildError(f"cannot read GGUF file {path}: {error}") from error
        self._tensors: dict[str, GGUFTensor] = {}
        for gguf_name, tensor in self._raw_tensors.items():
            name = hf_name(gguf_name)
            if name is not None:
                self._tensors[name] = tensor
        super().__init__(self._read_config())

    def _field(self, key: str, default: Any = None) -> Any:
        value = self._metadata.get(key)
        if value is None:
            if default is None:
                raise BuildError(f"GGUF metadata lacks {key}")
            return default
        return value

    def _read_config(self) -> ModelConfig:
        arch = str(self._field("general.architecture"))
        check_architecture(arch)
        embed = self._tensors.get("model.embed_tokens.weight")
        if embed is None:
            raise BuildError(f"{self.path} lacks token_embd.weight")
        hidden = int(self._field(f"{arch}.embedding_length"))
        heads = int(self._field(f"{arch}.attention.head_count"))
        head_dim = int(self._field(f"{arch}.attention.key_length", hidden // heads))
        return ModelConfig(
            architecture=arch,
            num_layers=int(self._field(f"{arch}.block_count")),
            hidden_size=hidden,
            intermediate_size=int(self._field(f"{arch}.feed_forward_length")),
            num_heads=heads,
            num_kv_heads=int(self._field(f"{arch}.attention.head_count_kv", heads)),
            head_dim=head_dim,
            vocab_size=int(embed.shape[0]),
            rope_theta=float(self._field(f"{arch}.rope.freq_base", 10000.0)),
            rms_norm_eps=float(self._field(f"{arch}.attention.layer_norm_rms_epsilon")),
            context_length=int(self._field(f"{arch}.context_length")),
            tie_word_embeddings="lm_head.weight" not in self._tensors,
            attention_bias="model.layers.0.self_attn.q_proj.bias" in self._tensors,
            rope_freq_factors=self._rope_freq_factors(arch, head_dim),
        )

    def _rope_freq_factors(self, arch: str, head_dim: int) -> tuple[float, ...] | None:
        """llama.cpp's ``rope_freqs`` divisors (llama3 scaling) or a linear scaling factor."""
        scaling = str(self._field(f"{arch}.rope.scaling.type", "none"))
        if scaling == "linear":
            factor = float(self._field(f"{arch}.rope.scaling.factor"))
            return (factor,) * (head_dim // 2)
        if scaling not in ("none", ""):
            raise BuildError(f"unsupported rope scaling {scaling!r} in {self.path}")
        freqs = self._raw_tensors.get("rope_freqs.weight")
        if freqs is None:
            return None
        values = np.asarray(dequantize(freqs.data, freqs.qtype), dtype=np.float32)
        return tuple(float(v) for v in values.reshape(-1))

    def names(self) -> list[str]:
        return list(self._tensors)

    def tensor(self, name: str) -> np.ndarray:
        if name not in self._tensors:
            raise BuildError(f"{self.path} lacks tensor {name}")
        raw = self._tensors[name]
        values = np.asarray(dequantize(raw.data, raw.qtype), dtype=np.float32)
        if self.config.architecture in _PERMUTED_ARCHITECTURES:
            if name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
                values = unpermute_rotary(values, self.config.num_heads)
            elif name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
                values = unpermute_rotary(values, self.config.num_kv_heads)
        return np.ascontiguousarray(values)
