"""The fast GGUF index against gguf's own reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from gguf.quants import dequantize

from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_file import read_gguf
from tests.unit.models import SMOLLM, packaged_gguf


def _same_as_gguf_reader(path: Path) -> None:
    metadata, tensors = read_gguf(path)
    reader = GGUFReader(path)
    assert metadata["general.architecture"] == reader.fields["general.architecture"].contents()
    assert [t.name for t in reader.tensors] == list(tensors)
    for expected in reader.tensors:
        got = tensors[expected.name]
        assert got.qtype == expected.tensor_type
        want = dequantize(expected.data, expected.tensor_type)
        assert np.array_equal(dequantize(got.data, got.qtype), want), expected.name


def test_tiny_gguf_matches_gguf_reader(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "t.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.add_token_list(["a", "b", "c"])  # an array of strings, skipped
    rng = np.random.default_rng(0)
    writer.add_tensor("a", rng.standard_normal((3, 64)).astype(np.float32))
    writer.add_tensor("b", rng.standard_normal((2, 5, 32)).astype(np.float16))
    q8 = gguf.quants.quantize(
        rng.standard_normal((4, 64)).astype(np.float32), gguf.GGMLQuantizationType.Q8_0
    )
    writer.add_tensor("c", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    _same_as_gguf_reader(path)
    metadata, tensors = read_gguf(path)
    assert metadata["llama.block_count"] == 1
    assert metadata["tokenizer.ggml.tokens"] is None
    assert tensors["b"].shape == (2, 5, 32)
    assert tensors["c"].shape == (4, 64)

    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BuildError, match="past the end"):
        read_gguf(path)
    path.write_bytes(b"nope" + bytes(64))
    with pytest.raises(BuildError, match="not a GGUF"):
        read_gguf(path)


@pytest.mark.slow
def test_packaged_gguf_matches_gguf_reader() -> None:
    _same_as_gguf_reader(packaged_gguf(SMOLLM))
