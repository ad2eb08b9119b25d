"""The tokenizer and chat template of a model source, as ``tokenizer.json`` + template text.

A GGUF carries no ``tokenizer.json``: its byte-level BPE (vocabulary, merges, token types,
special ids, pre-tokenizer name) is rebuilt here with HF ``tokenizers``, following llama.cpp's
pre-tokenizer table and transformers' GGUF integration. Control tokens become special added
tokens; user-defined ones (``<tool_call>``) become non-special added tokens, matched whole but
kept by ``decode(skip_special_tokens=True)``, as in the upstream ``tokenizer.json``.
A Hugging Face folder's ``tokenizer.json`` is used as is.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)

from service.modelbuild.errors import BuildError

logger = logging.getLogger(__name__)

# llama.cpp token types (gguf.TokenType)
_CONTROL = 3
_USER_DEFINED = 4

_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_TEKKEN_SPLIT = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# GGUF ``tokenizer.ggml.pre`` -> (split regex or None, digits one by one, NFC normalizer).
# None as regex means GPT-2's own regex inside ByteLevel.
_PRE_TOKENIZERS: dict[str, tuple[str | None, bool, bool]] = {
    "qwen2": (_QWEN2_SPLIT, False, True),
    "deepseek-r1-qwen": (_QWEN2_SPLIT, False, True),
    "llama-bpe": (_LLAMA3_SPLIT, False, False),
    "llama3": (_LLAMA3_SPLIT, False, False),
    "llama-v3": (_LLAMA3_SPLIT, False, False),
    "smaug-bpe": (_LLAMA3_SPLIT, False, False),
    "tekken": (_TEKKEN_SPLIT, False, False),
    "smollm": (None, True, False),
    "starcoder": (None, True, False),
    "refact": (None, True, False),
    "codeshell": (None, True, False),
    "gpt-2": (None, False, False),
    "default": (None, False, False),
}


@dataclass(frozen=True)
class TokenizerBundle:
    """What the builder writes and the model card records about tokens."""

    tokenizer: Tokenizer
    eos_token_id: int
    bos_token_id: int | None
    pad_token_id: int | None
    add_bos_token: bool
    chat_template: str | None
    extra_eos_ids: tuple[int, ...] = ()  # further end ids the source declares
    special_tokens: dict[str, int] = field(default_factory=dict)  # every added token

    def to_json(self) -> str:
        """The ``tokenizer.json`` text."""
        return str(self.tokenizer.to_str(pretty=True))


@lru_cache(maxsize=1)
def byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table, as byte-level BPE vocabularies spell tokens."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def gguf_tokenizer(metadata: Mapping[str, Any]) -> TokenizerBundle:
    """Rebuild the byte-level BPE tokenizer a GGUF's metadata (``read_gguf_metadata``) describes."""
    kind = metadata.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise BuildError(
            f"cannot rebuild the tokenizer: the GGUF vocabulary is {kind!r}, only byte-level BPE "
            "('gpt2') is supported; use the model's Hugging Face folder instead"
        )
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZERS:
        raise BuildError(
            f"cannot rebuild the tokenizer: unknown pre-tokenizer {pre!r} "
            f"(known: {', '.join(sorted(_PRE_TOKENIZERS))}); use the model's Hugging Face folder"
        )
    tokens: list[str] = metadata.get("tokenizer.ggml.tokens") or []
    types: list[int] = metadata.get("tokenizer.ggml.token_type", [1] * len(tokens))
    merges: list[str] | None = metadata.get("tokenizer.ggml.merges")
    if not tokens or not merges or len(types) != len(tokens):
        raise BuildError(
            "cannot rebuild the tokenizer: the GGUF's vocabulary, token types or merges are missing"
        )
    tokenizer = _byte_level_bpe(tokens, merges, *_PRE_TOKENIZERS[pre])
    _add_gguf_tokens(tokenizer, tokens, types)
    eos = metadata.get("tokenizer.ggml.eos_token_id")
    if eos is None:
        raise BuildError("the GGUF names no end-of-sequence token (tokenizer.ggml.eos_token_id)")
    eot = metadata.get("tokenizer.ggml.eot_token_id")
    return TokenizerBundle(
        tokenizer=tokenizer,
        eos_token_id=int(eos),
        bos_token_id=_optional_int(metadata.get("tokenizer.ggml.bos_token_id")),
        pad_token_id=_optional_int(metadata.get("tokenizer.ggml.padding_token_id")),
        add_bos_token=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
        chat_template=metadata.get("tokenizer.chat_template"),
        extra_eos_ids=() if eot is None else (int(eot),),
        special_tokens=_added_tokens(tokenizer),
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _byte_level_bpe(
    tokens: list[str], merges: list[str], split: str | None, digits: bool, nfc: bool
) -> Tokenizer:
    alphabet = set(byte_alphabet().values())
    spell = byte_alphabet()
    vocab = {
        token if set(token) <= alphabet else "".join(spell[b] for b in token.encode()): index
        for index, token in enumerate(tokens)
    }
    pairs = [tuple(merge.split(" ", 1)) for merge in merges]
    tokenizer = Tokenizer(models.BPE(vocab, pairs, ignore_merges=False))  # type: ignore[arg-type]
    steps: list[pre_tokenizers.PreTokenizer] = []
    if digits:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    if split is not None:
        steps.append(pre_tokenizers.Split(Regex(split), behavior="isolated"))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split is None))
    tokenizer.pre_tokenizer = steps[0] if len(steps) == 1 else pre_tokenizers.Sequence(steps)
    if nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tokenizer


def _add_gguf_tokens(tokenizer: Tokenizer, tokens: list[str], types: list[int]) -> None:
    """Control tokens as special added tokens, user-defined ones as plain added tokens.

    A control token spelled outside the byte alphabet is a llama.cpp mislabel in a byte-level
    vocabulary; it is skipped, as transformers does.
    """
    alphabet = set(byte_alphabet().values())
    pairs = list(zip(tokens, types, strict=True))
    control = [t for t, kind in pairs if kind == _CONTROL and set(t) <= alphabet]
    user = [t for t, kind in pairs if kind == _USER_DEFINED]
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in control])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in user])


def _added_tokens(tokenizer: Tokenizer) -> dict[str, int]:
    return {added.content: index for index, added in tokenizer.get_added_tokens_decoder().items()}


def hf_tokenizer(folder: Path) -> TokenizerBundle:
    """The tokenizer of a Hugging Face folder (``tokenizer.json`` + ``tokenizer_config.json``)."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    config = _read_json(folder / "tokenizer_config.json")
    model_config = _read_json(folder / "config.json")
    eos_ids = _hf_eos_ids(tokenizer, config, model_config)
    if not eos_ids:
        raise BuildError(f"{folder} names no end-of-sequence token (tokenizer_config.json)")
    return TokenizerBundle(
        tokenizer=tokenizer,
        eos_token_id=eos_ids[0],
        bos_token_id=_hf_token_id(tokenizer, config.get("bos_token")),
        pad_token_id=_hf_token_id(tokenizer, config.get("pad_token")),
        add_bos_token=bool(config.get("add_bos_token", False)),
        chat_template=_hf_chat_template(folder, config),
        extra_eos_ids=tuple(eos_ids[1:]),
        special_tokens=_added_tokens(tokenizer),
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _hf_token_id(tokenizer: Tokenizer, token: Any) -> int | None:
    if isinstance(token, dict):
        token = token.get("content")
    if not isinstance(token, str):
        return None
    index = tokenizer.token_to_id(token)
    return None if index is None else int(index)


def _hf_eos_ids(tokenizer: Tokenizer, config: dict[str, Any], model: dict[str, Any]) -> list[int]:
    ids: list[int] = []
    first = _hf_token_id(tokenizer, config.get("eos_token"))
    if first is not None:
        ids.append(first)
    declared = model.get("eos_token_id")
    for index in declared if isinstance(declared, list) else [declared]:
        if isinstance(index, int) and index not in ids:
            ids.append(index)
    return ids


def _hf_chat_template(folder: Path, config: dict[str, Any]) -> str | None:
    standalone = folder / "chat_template.jinja"
    if standalone.is_file():
        return standalone.read_text(encoding="utf-8")
    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: take "default"
        named = {entry.get("name"): entry.get("template") for entry in template}
        template = named.get("default")
    return template if isinstance(template, str) else None
