"""What every tool-call dialect shares: the parsed call, the output split, and the parser base.

A dialect parser turns one choice's generated text into OpenAI ``tool_calls`` plus leftover
``content``. Dialects only find *spans*: stretches of text that hold JSON candidates for calls.
This module decides which spans become calls:

- a candidate is a call when it is an object with a string ``name`` among the request's tools and
  ``arguments`` (or ``parameters``) that is a JSON object, or a string holding one;
- with an arguments check (the request's schemas), a call must also pass it, so returned calls
  are schema-valid even where the model wrote a form no grammar constrained (a fenced block);
- a span becomes calls only when every candidate in it is a call; otherwise the whole span stays
  in ``content`` (model text is never lost, and never shown twice);
- a call identical to an earlier one of the same answer (same name, same canonical arguments),
  or to one already answered in the conversation (``answered``), is dropped from both
  ``tool_calls`` and ``content``: degenerate repetition never reaches the client as calls, and
  ``ParsedOutput.answered_only`` tells the caller when nothing but answered calls came out;
- with a ``context`` (the conversation's user and tool text, casefolded), a call after the
  first of an answer is kept only when it is grounded and new. Its *heads* are its string
  argument values up to a first comma (``"Tokyo, JP"`` counts as ``tokyo``) and its numbers.
  A call without heads is kept. Otherwise one of its heads must occur in the context (a model
  that keeps writing calls invents places the question never named), and one of those must be
  new to the answer (no earlier call's head, nor inside one, nor around one), unless the call
  is the answer's first of its tool and a word of the tool's name occurs in the context
  ("weather in Sydney and restaurants in Sydney"). Asked to go on after its calls
  (``service.grammar``), the model writes the same place again with another unit, or calls
  another tool about the same thing. After tool results (``answered`` calls), every call is
  such an extra call, the answered ones counting as earlier: given the time in Sydney, the
  model goes on to the weather in Sydney, or to a stock price nobody asked about;
- with ``parallel_tool_calls: false`` only the first call is returned; further accepted calls are
  dropped from both ``tool_calls`` and ``content`` (logged at debug), so the client sees exactly
  what OpenAI returns in that mode: one call and no raw call markup;
- text outside accepted spans is ``content``, stripped, ``None`` when empty.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import string
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

logger = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_letters + string.digits
_DECODER = json.JSONDecoder()


def canonical_call(name: str, arguments: Mapping[str, Any]) -> str:
    """One call as a comparable string: the name and its arguments with sorted keys."""
    return json.dumps([name, arguments], ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def new_call_id() -> str:
    """``call_`` plus 24 random alphanumerics."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


@dataclass(frozen=True)
class ParsedCall:
    """One tool call; ``arguments`` is a compact JSON object string (unicode kept)."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class CallSyntax:
    """How a dialect writes calls, for grammars (``service.grammar``): ``open``, one or more
    call objects ``{"name": …, "<arguments_key>": {…}}`` joined by ``separator``, ``close``.

    ``separator`` empty: one call per block, blocks joined by ``block_separator``. ``bare``: a
    whole answer may also be call objects with no ``open``/``close`` (joined by newlines).
    """

    open: str
    close: str
    separator: str
    block_separator: str
    arguments_key: str = "arguments"
    bare: bool = False
    fenced: bool = False  # the parser also reads calls in ``` fences (in free text)


@dataclass(frozen=True)
class ParsedOutput:
    """One choice's text split into ``content`` and ``tool_calls``."""

    content: str | None
    tool_calls: list[ParsedCall]
    answered_only: bool = False  # calls were written, none kept (answered, or no new ones)
    dropped: int = 0  # calls written but dropped (repeated, answered, not grounded)


@dataclass(frozen=True)
class Span:
    """``text[start:end]`` holds ``candidates``: decoded JSON values that may be calls."""

    start: int
    end: int
    candidates: list[Any]


def decode_json(text: str, position: int) -> tuple[Any, int] | None:
    """The JSON value at ``position`` and the index after it, or ``None`` (no re-scanning)."""
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError:
        return None


def skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def as_candidates(value: Any) -> list[Any]:
    """A decoded value as a list of call candidates (a JSON list holds several)."""
    return list(value) if isinstance(value, list) else [value]


def call_arguments(candidate: Any) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` of a well-formed call object, else ``None``."""
    if not isinstance(candidate, Mapping) or not isinstance(candidate.get("name"), str):
        return None
    arguments = candidate.get("arguments", candidate.get("parameters"))
    if isinstance(arguments, str):
        decoded = decode_json(arguments.strip(), 0)
        arguments = decoded[0] if decoded and decoded[1] == len(arguments.strip()) else None
    if not isinstance(arguments, dict):
        return None
    return candidate["name"], arguments


class ToolCallParser(ABC):
    """Finds one dialect's calls in one choice's text (one instance per choice)."""

    #: Pre-filled assistant text that forces a call to some tool (``tool_choice: required``).
    required_prefill: ClassVar[str]
    #: The call syntax, for constrained decoding (the pre-fills are prefixes of it).
    syntax: ClassVar[CallSyntax]

    def __init__(
        self,
        tool_names: Collection[str],
        *,
        parallel: bool = True,
        check_arguments: Callable[[str, Mapping[str, Any]], bool] | None = None,
        answered: Collection[str] = (),
        context: str | None = None,
    ) -> None:
        self._tool_names = frozenset(tool_names)
        self._parallel = parallel
        self._check_arguments = check_arguments
        self._answered = frozenset(answered)  # ``canonical_call``s answered in the history
        self._context = context

    @staticmethod
    @abstractmethod
    def call_start(text: str, position: int) -> int | None:
        """Where a call may begin in a growing answer (``service.toolcalls.holdback``)."""

    @classmethod
    @abstractmethod
    def named_prefill(cls, name: str) -> str:
        """Pre-filled assistant text that forces a call to ``name`` (named ``tool_choice``)."""

    @classmethod
    @abstractmethod
    def format_calls(cls, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
        """Assistant text of earlier calls, for templates that cannot render ``tool_calls``."""

    @abstractmethod
    def spans(self, text: str) -> Iterator[Span]:
        """Candidate spans in order, not overlapping."""

    def parse(self, text: str) -> ParsedOutput:
        """Split ``text`` into content and calls (see the module docstring)."""
        calls: list[ParsedCall] = []
        kept: list[str] = []
        position = 0
        for span in self.spans(text):
            span_calls = self._span_calls(span)
            if span_calls is None:
                continue
            kept.append(text[position : span.start])
            position = span.end
            calls += span_calls
        kept.append(text[position:])
        written = len(calls)
        calls = self._new_calls(calls)
        if not self._parallel and len(calls) > 1:
            logger.debug("parallel_tool_calls is false: dropping %d extra calls", len(calls) - 1)
            calls = calls[:1]
        content = "".join(kept).strip()
        answered_only = bool(written) and not calls
        return ParsedOutput(content or None, calls, answered_only, written - len(calls))

    def _new_calls(self, calls: list[ParsedCall]) -> list[ParsedCall]:
        """``calls`` without repeats, calls answered in the history, and extra calls that are
        not grounded in the context or not new (see the module docstring)."""
        seen = set(self._answered)
        kept: list[ParsedCall] = []
        used: dict[str, list[str]] = {}  # a tool's heads in the calls kept or answered so far
        for answered in self._answered:
            name, arguments = json.loads(answered)
            used.setdefault(name, []).extend(_heads(arguments))
        for call in calls:
            arguments = json.loads(call.arguments)
            key = canonical_call(call.name, arguments)
            heads = _heads(arguments)
            extra = bool(kept or used)
            if key not in seen and (not extra or self._wanted(call.name, heads, used)):
                kept.append(call)
                used.setdefault(call.name, []).extend(heads)
            seen.add(key)
        if len(kept) < len(calls):
            logger.debug("dropped %d repeated, answered or unwanted calls", len(calls) - len(kept))
        return kept

    def _wanted(self, name: str, heads: list[str], used: dict[str, list[str]]) -> bool:
        """Whether an extra call is grounded and new (see the module docstring)."""
        context = self._context
        if context is None or not heads:
            return True
        grounded = [head for head in heads if head in context]
        if not grounded:
            return False
        earlier = [old for olds in used.values() for old in olds]
        if any(not any(head in old or old in head for old in earlier) for head in grounded):
            return True
        return name not in used and _named_in(name, context)

    def _span_calls(self, span: Span) -> list[ParsedCall] | None:
        calls = []
        for candidate in span.candidates:
            parsed = call_arguments(candidate)
            if parsed is None or parsed[0] not in self._tool_names:
                return None
            if self._check_arguments is not None and not self._check_arguments(*parsed):
                return None
            arguments = json.dumps(parsed[1], ensure_ascii=False, separators=(",", ":"))
            calls.append(ParsedCall(new_call_id(), parsed[0], arguments))
        return calls or None


def _heads(arguments: Mapping[str, Any]) -> list[str]:
    """A call's string argument values up to a first comma, and its numbers, casefolded."""
    heads = []
    for value in arguments.values():
        if isinstance(value, str) and value.strip():
            heads.append(value.split(",")[0].strip().casefold())
        elif isinstance(value, int) and not isinstance(value, bool):
            heads.append(str(value))
        elif isinstance(value, float):
            heads.append(str(int(value)) if value.is_integer() else str(value))
    return heads


# Words of tool names that say nothing of what the tool is about.
_GENERIC_WORDS = frozenset(
    {
        "get",
        "set",
        "fetch",
        "find",
        "check",
        "create",
        "make",
        "send",
        "list",
        "lookup",
        "look",
        "current",
        "run",
        "do",
        "query",
        "info",
    }
)


def _named_in(name: str, context: str) -> bool:
    """Whether a word of tool ``name`` (``find_restaurants``: ``restaurants``, singular or
    plural) occurs as a word in ``context``."""
    words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower())
    for word in words:
        if len(word) < 3 or word in _GENERIC_WORDS:
            continue
        stem = word[:-1] if word.endswith("s") and len(word) > 4 else word
        if re.search(rf"\b{re.escape(stem)}s?\b", context):
            return True
    return False
