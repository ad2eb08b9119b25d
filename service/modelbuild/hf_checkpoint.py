"""A Hugging Face folder (``config.json`` + ``*.safetensors``) as a :class:`Checkpoint`.

Safetensors files are memory-mapped and parsed here directly (an 8-byte header length, a JSON
header, raw little-endian data), which also covers bfloat16 without needing torch.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from service.modelbuild.checkpoint import Checkpoint, ModelConfig, check_architecture
from service.modelbuild.errors import BuildError
from service.modelbuild.rope import hf_rope

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}


def config_from_hf(raw: dict[str, Any]) -> ModelConfig:
    """A :class:`ModelConfig` from the fields of a Hugging Face ``config.json``."""
    arch = str(raw.get("model_type", ""))
    check_architecture(arch)
    try:
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        head_dim = int(raw.get("head_dim") or hidden // heads)
        theta, freq_factors = hf_rope(raw, head_dim)
        return ModelConfig(
            architecture=arch,
            num_layers=int(raw["num_hidden_layers"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            vocab_size=int(raw["vocab_size"]),
            rope_theta=theta,
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            context_length=int(raw.get("max_position_embeddings", 4096)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            attention_bias=arch == "qwen2" or bool(raw.get("attention_bias", False)),
            rope_freq_factors=freq_factors,
        )
    except KeyError as error:
        raise BuildError(f"config.json lacks {error.args[0]}") from None


def _read_header(path: Path) -> tuple[int, dict[str, Any]]:
    """The data offset and the JSON header of one safetensors file."""
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return 8 + length, header


class HFCheckpoint(Checkpoint):
    """Weights from every ``*.safetensors`` file of a folder, config from its ``config.json``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise BuildError(f"{folder} has no config.json")
        raw = json.loads(config_path.read_text(encoding="utf-8"))
        self._entries: dict[str, tuple[Path, int, dict[str, Any]]] = {}
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise BuildError(f"{folder} has no *.safetensors files")
        for file in files:
            offset, header = _read_header(file)
            for name, entry in header.items():
                self._entries[name] = (file, offset, entry)
        config = config_from_hf(raw)
        if config.tie_word_embeddings is False and "lm_head.weight" not in self._entries:
            config = dataclasses.replace(config, tie_word_embeddings=True)
        super().__init__(config)

    def names(self) -> list[str]:
        return list(self._entries)

    def tensor(self, name: str) -> np.ndarray:
        if name not in self._entries:
            raise BuildError(f"{self.folder} lacks tensor {name}")
        file, offset, entry = self._entries[name]
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise BuildError(f"{name}: unsupported safetensors dtype {entry['dtype']}")
        start, end = entry["data_offsets"]
        count = (end - start) // np.dtype(dtype).itemsize
        data = np.memmap(file, dtype=dtype, mode="r", offset=offset + start, shape=(count,))
        if entry["dtype"] == "BF16":
            values = (data.astype(np.uint32) << 16).view(np.float32)
        else:
            values = data.astype(np.float32)
        return values.reshape(entry["shape"])
