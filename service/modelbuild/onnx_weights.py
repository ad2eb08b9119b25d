"""Initializers for the exported graph: streamed to external data, optionally quantized.

Each tensor is written to ``model.onnx.data`` as soon as it is produced and only a small
``TensorProto`` pointing at it stays in memory, so a model is never held in memory twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.capi._pybind_state import quantize_matmul_4bits, quantize_matmul_8bits

INLINE_LIMIT = 1024  # bytes; smaller tensors stay inside model.onnx
_PAGE_ALIGN = 64 * 1024  # large tensors start on a 64 KiB boundary, so ORT can memory-map them
_SMALL_ALIGN = 64
INT4_BLOCK_SIZE = 32


@dataclass(frozen=True)
class QuantizedWeight:
    """A ``[K, N]`` weight quantized for ``MatMulNBits`` (asymmetric, one scale per block)."""

    packed: np.ndarray  # uint8 [N, K / block, block * bits / 8]
    scales: np.ndarray  # float32 [N, K / block]
    zero_points: np.ndarray  # uint8 [N, K / block] packed to ``bits`` each
    k: int
    n: int
    bits: int


def quantize_blockwise(
    weight_kn: np.ndarray, bits: int, block_size: int = INT4_BLOCK_SIZE
) -> QuantizedWeight:
    """Quantize a float32 ``[K, N]`` weight with ONNX Runtime's own MatMulNBits quantizer."""
    k, n = weight_kn.shape
    blocks = (k + block_size - 1) // block_size
    per_byte = 8 // bits
    weight = np.ascontiguousarray(weight_kn, dtype=np.float32)
    if blocks * block_size != k:
        weight = np.pad(weight, ((0, blocks * block_size - k), (0, 0)))
    packed = np.zeros((n, blocks, block_size // per_byte), dtype=np.uint8)
    scales = np.zeros((n, blocks), dtype=np.float32)
    zero_points = np.zeros((n, (blocks + per_byte - 1) // per_byte), dtype=np.uint8)
    quantize = quantize_matmul_4bits if bits == 4 else quantize_matmul_8bits
    quantize(packed, weight, scales, zero_points, block_size, n, k, False)
    return QuantizedWeight(packed, scales, zero_points, k, n, bits)


class ExternalDataWriter:
    """Appends tensors to one external data file and hands back ``TensorProto`` references."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self._file: BinaryIO = data_path.open("wb")
        self._offset = 0
        self.initializers: list[onnx.TensorProto] = []

    def add(self, name: str, array: np.ndarray) -> str:
        """Store ``array`` as initializer ``name``; returns the name for use as a node input."""
        array = np.ascontiguousarray(array)
        if array.nbytes < INLINE_LIMIT:
            self.initializers.append(numpy_helper.from_array(array, name))
            return name
        align = _PAGE_ALIGN if array.nbytes >= _PAGE_ALIGN else _SMALL_ALIGN
        padding = -self._offset % align
        self._file.write(b"\0" * padding)
        self._offset += padding
        self._file.write(array.tobytes())
        tensor = onnx.TensorProto(name=name, dims=array.shape)
        tensor.data_type = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (
            ("location", self.data_path.name),
            ("offset", str(self._offset)),
            ("length", str(array.nbytes)),
        ):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self._offset += array.nbytes
        self.initializers.append(tensor)
        return name

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._offset

    def close(self) -> None:
        """Flush and close the data file."""
        self._file.close()
