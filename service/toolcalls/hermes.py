"""Hermes / Qwen2.5 dialect: ``<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>``.

One or many tagged calls. Small Qwen models often skip the tags; when the text holds no tagged
span, these are accepted too, as long as they make up the whole text or a whole fenced block:
bare JSON object(s) separated by whitespace, a JSON list of objects, or the same inside
```` ```json ```` fences (text around a fenced block stays content). Objects need ``name`` and
``arguments`` (or ``parameters``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from service.toolcalls.base import (
    CallSyntax,
    Span,
    ToolCallParser,
    as_candidates,
    decode_json,
    skip_space,
)
from service.toolcalls.holdback import bare_start, earliest, marker_start
from service.toolcalls.tagged import tagged_spans

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)```", re.DOTALL)
_FENCE_HEAD = re.compile(r"(?:json)?[ \t]*\n")
# What may follow ``` while the fence head is still being written.
_FENCE_HEAD_PREFIX = re.compile(r"(?:j|js|jso)?|(?:json)?[ \t]*")


def fence_start(text: str, position: int) -> int | None:
    """Where a fenced block the parser may read as calls opens (```` ```json ```` or ```` ``` ````
    then a newline), or may still open at the end of ``text``."""
    fence = marker_start(text, position, "```")
    while fence is not None:
        head = fence + 3
        if _FENCE_HEAD.match(text, head) or _FENCE_HEAD_PREFIX.fullmatch(text, head):
            return fence
        fence = marker_start(text, fence + 1, "```")
    return None


def call_start(text: str, position: int) -> int | None:
    """A tagged call, a fenced block, or bare JSON opening the answer."""
    bare = bare_start(text, position)
    return earliest(marker_start(text, position, OPEN), fence_start(text, position), bare)


def json_sequence(text: str, start: int, end: int) -> list[Any] | None:
    """Candidates when ``text[start:end]`` is nothing but whitespace-separated JSON values."""
    candidates: list[Any] = []
    position = skip_space(text, start)
    while position < end:
        decoded = decode_json(text, position)
        if decoded is None or decoded[1] > end:
            return None
        candidates += as_candidates(decoded[0])
        position = skip_space(text, decoded[1])
    return candidates or None


class HermesParser(ToolCallParser):
    """Tagged calls, else bare or fenced JSON calls."""

    required_prefill = OPEN + '\n{"name": "'
    syntax = CallSyntax(OPEN + "\n", "\n" + CLOSE, "", "\n", bare=True, fenced=True)
    call_start = staticmethod(call_start)

    @classmethod
    def named_prefill(cls, name: str) -> str:
        return OPEN + "\n" + json.dumps({"name": name}, ensure_ascii=False)[:-1] + ', "arguments":'

    @classmethod
    def format_calls(cls, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
        return "\n".join(
            f"{OPEN}\n{json.dumps({'name': n, 'arguments': a}, ensure_ascii=False)}\n{CLOSE}"
            for n, a in calls
        )

    def spans(self, text: str) -> Iterator[Span]:
        tagged = list(tagged_spans(text, OPEN, CLOSE))
        if tagged:
            yield from tagged
            return
        whole = json_sequence(text, 0, len(text))
        if whole is not None:
            yield Span(0, len(text), whole)
            return
        for fence in _FENCE.finditer(text):
            candidates = json_sequence(text, fence.start(1), fence.end(1))
            if candidates is not None:
                yield Span(fence.start(), fence.end(), candidates)
