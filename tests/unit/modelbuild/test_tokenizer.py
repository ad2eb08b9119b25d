"""The tokenizer rebuilt from GGUF metadata, against a tiny GGUF and the reference tokenizers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_metadata import read_gguf_metadata
from service.modelbuild.tokenizer import TokenizerBundle, gguf_tokenizer, hf_tokenizer
from tests.unit.models import QWEN, SMOLLM, TINY_TEMPLATE, packaged_gguf, write_tiny_gguf

TEXTS = [
    "Hello world",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)  # recursion\n",
    'x = {"key": [1, 2.5, -3e10], "ok": true}; print(f"{x!r}")',
    "你好，世界！日本語のテキスト。한국어 텍스트",  # noqa: RUF001
    "emoji 😀👍🏽🤖 and flags 🇫🇷 and ZWJ 👩‍💻",
    "   leading and trailing spaces   ",
    "tabs\t\tand\r\nCRLF\n\n\nthree newlines\n \n",
    "a  b   c    d     e",
    "numbers 12345 67.89 1,000,000 3.14159 2024-11-25 0x1F",
    "I'm sure they'll say we've DONE it, isn't it?",
    "Ünïcödé naïve café ß ﬁ ℕ⊆ℤ ∑∫√",  # noqa: RUF001
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
    "text<|endoftext|>more",
    "",
]


def _ids(bundle: TokenizerBundle, text: str) -> list[int]:
    return list(bundle.tokenizer.encode(text, add_special_tokens=False).ids)


def test_tiny_gguf_tokenizer(tmp_path: Path) -> None:
    bundle = gguf_tokenizer(read_gguf_metadata(write_tiny_gguf(tmp_path / "tiny.gguf")))
    special = bundle.special_tokens
    assert _ids(bundle, "hello world") == [
        bundle.tokenizer.token_to_id(t) for t in ("hello", "Ġworld")
    ]
    assert _ids(bundle, "<|im_start|>hello<tool_call>") == [
        special["<|im_start|>"],
        bundle.tokenizer.token_to_id("hello"),
        special["<tool_call>"],
    ]
    assert bundle.eos_token_id == special["<|im_end|>"]
    assert bundle.bos_token_id == bundle.pad_token_id == special["<|endoftext|>"]
    assert bundle.chat_template == TINY_TEMPLATE
    data = json.loads(bundle.to_json())
    flags = {t["content"]: t["special"] for t in data["added_tokens"]}
    assert flags == {
        "<|endoftext|>": True,
        "<|im_start|>": True,
        "<|im_end|>": True,
        "<tool_call>": False,
        "</tool_call>": False,
    }
    # user-defined tokens survive skip_special_tokens (the tool-call parser needs them)
    ids = _ids(bundle, "<|im_start|><tool_call>hello</tool_call><|im_end|>")
    assert bundle.tokenizer.decode(ids, skip_special_tokens=True) == "<tool_call>hello</tool_call>"


def test_non_bpe_vocabulary_is_refused(tmp_path: Path) -> None:
    reader = read_gguf_metadata(write_tiny_gguf(tmp_path / "spm.gguf", tokenizer_model="llama"))
    with pytest.raises(BuildError, match="only byte-level BPE"):
        gguf_tokenizer(reader)


def test_unknown_pre_tokenizer_is_refused(tmp_path: Path) -> None:
    reader = read_gguf_metadata(write_tiny_gguf(tmp_path / "odd.gguf", pre="brand-new"))
    with pytest.raises(BuildError, match="unknown pre-tokenizer 'brand-new'"):
        gguf_tokenizer(reader)


def test_hf_folder_tokenizer(tmp_path: Path) -> None:
    tiny = gguf_tokenizer(read_gguf_metadata(write_tiny_gguf(tmp_path / "tiny.gguf")))
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(tiny.to_json())
    config: dict[str, Any] = {
        "eos_token": "<|im_end|>",
        "bos_token": None,
        "pad_token": {"content": "<|endoftext|>"},
        "chat_template": [
            {"name": "default", "template": "T"},
            {"name": "tool_use", "template": "U"},
        ],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    (folder / "config.json").write_text(json.dumps({"eos_token_id": [tiny.eos_token_id, 256]}))
    bundle = hf_tokenizer(folder)
    assert (bundle.eos_token_id, bundle.extra_eos_ids) == (tiny.eos_token_id, (256,))
    assert (bundle.bos_token_id, bundle.pad_token_id) == (None, tiny.pad_token_id)
    assert bundle.chat_template == "T"
    (folder / "chat_template.jinja").write_text("J")
    assert hf_tokenizer(folder).chat_template == "J"


@pytest.fixture(scope="module", params=[QWEN, SMOLLM])
def packaged(request: pytest.FixtureRequest) -> tuple[Path, TokenizerBundle]:
    path = packaged_gguf(request.param)
    return path, gguf_tokenizer(read_gguf_metadata(path))


@pytest.mark.slow
def test_packaged_control_tokens_are_single_ids(packaged: tuple[Path, TokenizerBundle]) -> None:
    _, bundle = packaged
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert _ids(bundle, f"x{token}y")[1] == bundle.special_tokens[token]
    for text in TEXTS:
        ids = _ids(bundle, text)
        assert bundle.tokenizer.decode(ids, skip_special_tokens=False) == text


@pytest.mark.slow
@pytest.mark.reference
def test_packaged_tokenizer_matches_reference(packaged: tuple[Path, TokenizerBundle]) -> None:
    transformers = pytest.importorskip("transformers")
    path, bundle = packaged
    reference = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in TEXTS:
        assert _ids(bundle, text) == reference.encode(text, add_special_tokens=False), text
    assert bundle.eos_token_id == reference.eos_token_id
    assert bundle.chat_template == reference.chat_template
