"""Tool-call dialects: one module per dialect behind a small lazy registry.

The model card's ``tool_dialect`` names the dialect; :func:`parser_class` imports its module on
first use. Parsers are created per choice (they are cheap and hold per-request settings).
"""

from __future__ import annotations

import importlib

from service.toolcalls.base import ParsedCall, ParsedOutput, ToolCallParser

__all__ = ["DIALECTS", "ParsedCall", "ParsedOutput", "ToolCallParser", "parser_class"]

DIALECTS: dict[str, tuple[str, str]] = {
    "hermes": ("service.toolcalls.hermes", "HermesParser"),
    "smollm2": ("service.toolcalls.smollm2", "SmolLM2Parser"),
    "llama3_json": ("service.toolcalls.llama3_json", "Llama3JsonParser"),
}


def parser_class(dialect: str) -> type[ToolCallParser]:
    """The parser class of ``dialect``; ``ValueError`` for a dialect we do not parse."""
    if dialect not in DIALECTS:
        raise ValueError(f"unsupported tool-call dialect {dialect!r}; known: {sorted(DIALECTS)}")
    module, name = DIALECTS[dialect]
    parser: type[ToolCallParser] = getattr(importlib.import_module(module), name)
    return parser
