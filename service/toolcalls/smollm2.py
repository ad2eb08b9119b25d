"""SmolLM2 dialect: ``<tool_call>[{"name": …, "arguments": {…}}, …]</tool_call>``.

The list form of SmolLM2's tool-use prompt; a single object inside the tags is accepted too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from service.toolcalls.base import CallSyntax, Span, ToolCallParser
from service.toolcalls.holdback import marker_start
from service.toolcalls.tagged import tagged_spans

OPEN = "<tool_call>"
CLOSE = "</tool_call>"


class SmolLM2Parser(ToolCallParser):
    """Tagged JSON lists of calls."""

    required_prefill = OPEN + '[{"name": "'
    syntax = CallSyntax(OPEN + "[", "]" + CLOSE, ", ", "")

    @staticmethod
    def call_start(text: str, position: int) -> int | None:
        """Only tagged calls."""
        return marker_start(text, position, OPEN)

    @classmethod
    def named_prefill(cls, name: str) -> str:
        return OPEN + "[" + json.dumps({"name": name}, ensure_ascii=False)[:-1] + ', "arguments":'

    @classmethod
    def format_calls(cls, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
        listed = [{"name": name, "arguments": arguments} for name, arguments in calls]
        return OPEN + json.dumps(listed, ensure_ascii=False) + CLOSE

    def spans(self, text: str) -> Iterator[Span]:
        return tagged_spans(text, OPEN, CLOSE)
