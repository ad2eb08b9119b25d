"""A byte-level BPE tokenizer small enough to build in a test: one token per byte, a few merges,
and added tokens (for llguidance matchers without a built model)."""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

MERGES = [("{", '"'), ("n", "a"), ("m", "e"), ("na", "me"), ('"', ":")]
ADDED = ["<|im_end|>", "<tool_call>", "</tool_call>"]


def toy_tokenizer_json(added: list[str] = ADDED) -> str:
    """``tokenizer.json`` text: 256 byte tokens, ``MERGES``, then ``added`` (ids 256+…)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    for left, right in MERGES:
        vocab[left + right] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in added])
    return tokenizer.to_str()
