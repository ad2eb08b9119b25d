"""Tool-dialect detection and stop ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.modelbuild.card import detect_tool_dialect, stop_token_ids
from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_metadata import read_gguf_metadata
from service.modelbuild.tokenizer import gguf_tokenizer
from tests.unit.models import QWEN, SMOLLM, packaged_gguf, write_tiny_gguf


@pytest.mark.parametrize(
    ("architecture", "template", "name", "dialect"),
    [
        ("qwen2", "...<tool_call>...<|im_end|>", "qwen", "hermes"),
        ("llama", "{{ '<|im_start|>' }} You are SmolLM", "x", "smollm2"),
        ("llama", "<|im_start|>plain chatml", "smollm2-360m", "smollm2"),
        ("llama", "<|start_header_id|>ipython<|end_header_id|>...<|eot_id|>", "l3", "llama3_json"),
        ("mistral", "[AVAILABLE_TOOLS]...[TOOL_CALLS]", "m", "mistral"),
        ("llama", "<tool_call>{{ x }}</tool_call>", "hermes-llama", "hermes"),
    ],
)
def test_detect_tool_dialect(architecture: str, template: str, name: str, dialect: str) -> None:
    assert detect_tool_dialect(architecture, template, name) == dialect


def test_undetectable_dialect_asks_for_the_flag() -> None:
    with pytest.raises(BuildError, match="--tool-dialect"):
        detect_tool_dialect("llama", "<s>[INST] plain [/INST]", "some-model")


def test_stop_ids_put_eos_first_without_duplicates(tmp_path: Path) -> None:
    bundle = gguf_tokenizer(read_gguf_metadata(write_tiny_gguf(tmp_path / "tiny.gguf")))
    special = bundle.special_tokens
    assert stop_token_ids(bundle) == [special["<|im_end|>"], special["<|endoftext|>"]]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "dialect", "stops"),
    [(QWEN, "hermes", [151645, 151643]), (SMOLLM, "smollm2", [2, 0])],
)
def test_packaged_models(name: str, dialect: str, stops: list[int]) -> None:
    metadata = read_gguf_metadata(packaged_gguf(name))
    bundle = gguf_tokenizer(metadata)
    architecture = str(metadata["general.architecture"])
    assert detect_tool_dialect(architecture, bundle.chat_template, name) == dialect
    assert stop_token_ids(bundle) == stops
