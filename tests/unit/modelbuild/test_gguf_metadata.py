"""The fast GGUF metadata reader agrees with gguf.GGUFReader and refuses non-GGUF files."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGUFReader

from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_metadata import read_gguf_metadata
from tests.unit.models import write_tiny_gguf


def test_matches_gguf_reader(tmp_path: Path) -> None:
    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    expected = {
        key: field.contents()
        for key, field in GGUFReader(path).fields.items()
        if not key.startswith("GGUF.")
    }
    metadata = read_gguf_metadata(path)
    assert metadata == expected
    assert metadata["tokenizer.ggml.tokens"][-2:] == ["<tool_call>", "</tool_call>"]


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"NOPE" + bytes(32))
    with pytest.raises(BuildError, match="not a GGUF file"):
        read_gguf_metadata(path)


def test_truncated(tmp_path: Path) -> None:
    whole = write_tiny_gguf(tmp_path / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(BuildError, match="truncated"):
        read_gguf_metadata(cut)
