"""Grammars checked before generation, so a schema the engine cannot follow is a 400, not a
failure half-way through decoding.

Some schemas compile but break once decoding starts: a ``$ref`` cycle with no finite instance
("Too many items"), hundreds of optional properties (a parser row over llguidance's limit), or a
property the model could only write as one of its control tokens (``"<|im_end|>"``). So each
grammar is compiled against the model's tokenizer, fed the prompt's pre-fill, and walked a few
tokens along its lowest-id path (the most literal one); any error on the way is the request's.
Results are cached by grammar and pre-fill. The walk is a cheap smoke test, not a proof.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from llguidance import LLMatcher, LLTokenizer

from service.errors import InvalidRequest
from service.grammar import arguments_schema
from service.prompting.tokenizer import PromptTokenizer
from service.protocol import ChatRequest

WALK_TOKENS = 8
_tokenizers: dict[int, LLTokenizer] = {}
_lock = threading.Lock()


def check_request_grammar(
    request: ChatRequest,
    grammar: str | None,
    prefill_ids: Sequence[int],
    tokenizer: PromptTokenizer,
) -> None:
    """``InvalidRequest`` naming the field whose schema cannot be generated under ``grammar``."""
    if grammar is None:
        return
    for param, schema in _schemas(request):
        _check_control_tokens(schema, param, tokenizer)
    error = _walk_error(_ll_tokenizer(tokenizer), grammar, tuple(prefill_ids))
    if error:
        param = _grammar_param(request)
        raise InvalidRequest(
            f"Invalid value for '{param}': constrained decoding cannot follow this schema "
            f"({error}). Simplify the schema (fewer optional properties, no required "
            "recursion).",
            param=param,
        )


def _schemas(request: ChatRequest) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if request.effective_tool_choice != "none":
        for index, tool in enumerate(request.tools or []):
            yield f"tools[{index}].function.parameters", arguments_schema(tool)
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_schema":
        yield "response_format.json_schema.schema", response_format.schema_dict


def _grammar_param(request: ChatRequest) -> str:
    tools = request.tools and request.effective_tool_choice != "none"
    response_format = request.response_format
    if not tools and response_format is not None and response_format.type == "json_schema":
        return "response_format.json_schema.schema"
    return "tools" if tools else "response_format"


def _check_control_tokens(schema: Mapping[str, Any], param: str, tok: PromptTokenizer) -> None:
    """Property names and constants are written by the model as text; one spelled like a
    control token (``<|im_end|>``) could only be written as that token."""
    stack: list[Any] = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, Mapping):
            continue
        properties = item.get("properties")
        enum = item.get("enum")
        texts = list(properties) if isinstance(properties, Mapping) else []
        values = [item.get("const"), *(enum if isinstance(enum, list) else [])]
        texts += [value for value in values if isinstance(value, str)]
        for text in texts:
            if any(token_id is not None for _, token_id in tok.split_added(text)):
                raise InvalidRequest(
                    f"Invalid value for '{param}': {text!r} contains a control token of the "
                    "model, which it cannot write as text.",
                    param=param,
                )
        stack.extend(item.values())


def _ll_tokenizer(tokenizer: PromptTokenizer) -> LLTokenizer:
    with _lock:
        ll = _tokenizers.get(id(tokenizer))
        if ll is None:
            ll = _tokenizers[id(tokenizer)] = LLTokenizer(tokenizer.tokenizer_json)
        return ll


@lru_cache(maxsize=512)
def _walk_error(tokenizer: LLTokenizer, grammar: str, prefill_ids: tuple[int, ...]) -> str:
    """llguidance's error on compiling ``grammar``, feeding the pre-fill, and the first
    ``WALK_TOKENS`` lowest-id tokens it allows; empty when none."""
    matcher = LLMatcher(tokenizer, grammar, log_level=0)
    if prefill_ids and not matcher.is_error():
        matcher.consume_tokens(list(prefill_ids))
    eos = list(tokenizer.eos_tokens)
    bitmask = np.zeros((tokenizer.vocab_size + 31) // 32, dtype=np.int32)
    for _ in range(WALK_TOKENS):
        if matcher.is_error() or matcher.is_stopped():
            break
        matcher.unsafe_compute_mask_ptr(bitmask.ctypes.data, bitmask.nbytes)
        if matcher.is_error():
            break
        bits = np.unpackbits(bitmask.view(np.uint8), bitorder="little")[: tokenizer.vocab_size]
        bits[eos] = 0
        allowed = np.flatnonzero(bits)
        if not allowed.size:
            if not matcher.is_accepting():
                return "the grammar allows no next token"
            break
        matcher.consume_token(int(allowed[0]))
    if not matcher.is_error():
        return ""
    return matcher.get_error().strip().splitlines()[0][:300]
