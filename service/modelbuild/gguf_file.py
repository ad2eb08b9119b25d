"""Index a GGUF file quickly: scalar metadata and where each tensor's bytes lie.

``gguf.GGUFReader`` builds a numpy view for every element of every metadata array (seconds for
a 150k-token vocabulary); the exporter needs only scalars and tensor locations, so arrays are
skipped here and tensors come back as memory-mapped byte views ready for
``gguf.quants.dequantize``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from service.modelbuild.errors import BuildError

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor: its type, numpy-order shape and raw bytes ``[..., row_bytes]``."""

    name: str
    qtype: GGMLQuantizationType
    shape: tuple[int, ...]
    data: np.ndarray


class _Cursor:
    def __init__(self, buffer: np.ndarray) -> None:
        self.buffer = buffer.data
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        (value,) = struct.unpack_from(fmt, self.buffer, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        raw = bytes(self.buffer[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        """One value; arrays are skipped (None)."""
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.unpack("<I"), self.unpack("<Q")
            if item_kind in _SCALARS:
                self.pos += count * struct.calcsize(_SCALARS[item_kind])
            else:
                for _ in range(count):
                    self.value(item_kind)
            return None
        raise BuildError(f"unknown GGUF value type {kind}")


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, GGUFTensor]]:
    """(scalar metadata, tensors by GGUF name) of a GGUF v2/v3 file."""
    buffer = np.memmap(path, dtype=np.uint8, mode="r")
    cursor = _Cursor(buffer)
    try:
        if bytes(buffer[:4]) != b"GGUF":
            raise BuildError(f"{path} is not a GGUF file")
        cursor.pos = 4
        version = cursor.unpack("<I")
        if version < 2:
            raise BuildError(f"{path}: GGUF version {version} is not supported")
        tensor_count, kv_count = cursor.unpack("<Q"), cursor.unpack("<Q")
        metadata = {}
        for _ in range(kv_count):
            key = cursor.string()
            metadata[key] = cursor.value(cursor.unpack("<I"))
        infos = []
        for _ in range(tensor_count):
            name = cursor.string()
            dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
            infos.append((name, dims, cursor.unpack("<I"), cursor.unpack("<Q")))
    except struct.error as error:
        raise BuildError(f"{path} is truncated or corrupt: {error}") from error
    alignment = int(metadata.get("general.alignment") or _DEFAULT_ALIGNMENT)
    start = -(-cursor.pos // alignment) * alignment
    tensors = {}
    for name, dims, kind, offset in infos:
        qtype = GGMLQuantizationType(kind)
        block, type_size = GGML_QUANT_SIZES[qtype]
        row_bytes = dims[0] // block * type_size
        rows = int(np.prod(dims[1:], dtype=np.int64))
        begin = start + offset
        if begin + rows * row_bytes > len(buffer):
            raise BuildError(f"{path}: tensor {name} lies past the end of the file")
        shape = tuple(reversed(dims))
        data = buffer[begin : begin + rows * row_bytes].reshape(*shape[:-1], row_bytes)
        tensors[name] = GGUFTensor(name, qtype, shape, data)
    return metadata, tensors
