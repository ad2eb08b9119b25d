"""Llama 3.x JSON dialect: ``{"name": …, "parameters": {…}}``, optionally after ``<|python_tag|>``.

Calls must make up the whole text after the (optional) python tag: one or more objects separated
by whitespace or ``;``, or a JSON list of objects. Text before ``<|python_tag|>`` stays content.
"""

from __future__ import annotations

import json
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

PYTHON_TAG = "<|python_tag|>"


def _calls_until_end(text: str, start: int) -> list[Any] | None:
    candidates: list[Any] = []
    position = skip_space(text, start)
    while position < len(text):
        decoded = decode_json(text, position)
        if decoded is None:
            return None
        candidates += as_candidates(decoded[0])
        position = skip_space(text, decoded[1])
        if text.startswith(";", position):
            position = skip_space(text, position + 1)
    return candidates or None


class Llama3JsonParser(ToolCallParser):
    """Whole-text JSON calls, optionally introduced by the python tag."""

    required_prefill = '{"name": "'
    syntax = CallSyntax("", "", "; ", "", arguments_key="parameters")

    @staticmethod
    def call_start(text: str, position: int) -> int | None:
        """The python tag anywhere, or JSON opening the answer."""
        return earliest(marker_start(text, position, PYTHON_TAG), bare_start(text, position))

    @classmethod
    def named_prefill(cls, name: str) -> str:
        return json.dumps({"name": name}, ensure_ascii=False)[:-1] + ', "parameters":'

    @classmethod
    def format_calls(cls, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
        return "; ".join(
            json.dumps({"name": name, "parameters": arguments}, ensure_ascii=False)
            for name, arguments in calls
        )

    def spans(self, text: str) -> Iterator[Span]:
        tag = text.find(PYTHON_TAG)
        start = 0 if tag == -1 else tag
        body = start if tag == -1 else tag + len(PYTHON_TAG)
        candidates = _calls_until_end(text, body)
        if candidates is not None:
            yield Span(start, len(text), candidates)
