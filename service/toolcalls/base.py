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
  first of an answer is dropped when it has string arguments and none of them (up to a first
  comma: ``"Tokyo, JP"`` counts as ``tokyo``) occurs in the context: a model that keeps
  writing calls invents places the question never named;
- with ``parallel_tool_calls: false`` only the first call is returned; further accepted calls are
  dropped from both ``tool_calls`` and ``content`` (logged at debug), so the client sees exactly
  what OpenAI returns in that mode: one call and no raw call markup;
- text outside accepted spans is ``content``, stripped, ``None`` when empty.
"""

from __future__ import annotations

import json
import logging
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


@dataclass(frozen=True)
class ParsedOutput:
    """One choice's text split into ``content`` and ``tool_calls``."""

    content: str | None
    tool_calls: list[ParsedCall]
    answered_only: bool = False  # calls were written, each one already answered
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
        """``calls`` without repeats, calls answered in the history, and extra calls not
        grounded in the context."""
        seen = set(self._answered)
        kept: list[ParsedCall] = []
        for call in calls:
            arguments = json.loads(call.arguments)
            key = canonical_call(call.name, arguments)
            if key not in seen and (not kept or self._grounded(arguments)):
                kept.append(call)
            seen.add(key)
        if len(kept) < len(calls):
            logger.debug("dropped %d repeated or answered calls", len(calls) - len(kept))
        return kept

    def _grounded(self, arguments: Mapping[str, Any]) -> bool:
        if self._context is None:
            return True
        heads = [
            value.split(",")[0].strip().casefold()
            for value in arguments.values()
            if isinstance(value, str) and value.strip()
        ]
        return not heads or any(head in self._context for head in heads)

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
