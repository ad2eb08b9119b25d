"""Streaming the calls a grammar makes certain (``tool_choice`` required or named).

Under those choices the constrained answer is nothing but call objects in the dialect's syntax,
``{"name": "<tool>", "<arguments key>": {…}}``, between its markers. :class:`CallStream` reads
them as the text grows: a call's name as soon as its string closes, then its arguments piece by
piece, rewritten as they come to the compact JSON the parser returns (``json.dumps`` with
``separators=(",", ":")`` and unicode kept), so the streamed pieces add up to the parser's
``arguments``. Each character is read once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

_CALL_OPENING = '{"name": "'
_NUMBER = frozenset("+-0123456789.eE")


@dataclass(frozen=True)
class CallPiece:
    """Call ``index`` began (``name`` set) or its arguments grew by ``arguments``."""

    index: int
    name: str | None = None
    arguments: str = ""


@dataclass
class CompactJson:
    """One JSON value, written compactly as it arrives; ``done`` once it is complete."""

    done: bool = False
    _depth: int = 0
    _started: bool = False
    _in_string: bool = False
    _escape: str = ""  # an escape sequence being read (``\\uXXXX`` or ``\\x``)
    _number: str = ""
    _literal: bool = False  # inside true / false / null

    def feed(self, text: str) -> tuple[str, str]:
        """``(compact output, unread rest of text)``; the rest is what follows the value."""
        out: list[str] = []
        for position, char in enumerate(text):
            if self.done:
                return "".join(out), text[position:]
            out.append(self._char(char))
        return "".join(out), ""

    def _char(self, char: str) -> str:
        if self._in_string:
            return self._string_char(char)
        out = ""
        if self._number and char not in _NUMBER:
            out, self._number = json.dumps(json.loads(self._number)), ""
            self._end_scalar()
            if self.done:
                return out
        if self._literal and not char.isalpha():
            self._literal = False
            self._end_scalar()
            if self.done:
                return out
        if char.isspace():
            return out
        self._started = True
        if char == '"':
            self._in_string = True
            return out + char
        if char in _NUMBER and not self._literal:
            self._number += char
            return out
        if char.isalpha():
            self._literal = True
            return out + char
        if char in "{[":
            self._depth += 1
        elif char in "}]":
            self._depth -= 1
            self._end_scalar()
        return out + char

    def _end_scalar(self) -> None:
        if self._started and self._depth == 0:
            self.done = True

    def _string_char(self, char: str) -> str:
        if not self._escape:
            if char == "\\":
                self._escape = char
                return ""
            if char == '"':
                self._in_string = False
                self._end_scalar()
            return char
        self._escape += char
        if self._escape[1] == "u" and len(self._escape) < 6:
            return ""
        if _is_high_surrogate(self._escape[:6]) and len(self._escape) < 12:
            return ""  # wait for the low half of the pair
        escape, self._escape = self._escape, ""
        decoded = json.loads(f'"{escape}"')
        return json.dumps(decoded, ensure_ascii=False)[1:-1]


def _is_high_surrogate(escape: str) -> bool:
    return len(escape) == 6 and escape[:2] == "\\u" and 0xD800 <= int(escape[2:], 16) <= 0xDBFF


@dataclass
class CallStream:
    """Reads grammar-certain call objects from an answer fed in pieces (pre-fill included)."""

    calls: int = 0  # calls begun
    arguments: list[str] = field(default_factory=list)  # the streamed arguments per call
    _state: str = "seek"  # seek -> name -> key -> arguments -> seek
    _tail: str = ""
    _name: str = ""
    _json: CompactJson | None = None

    def feed(self, text: str) -> list[CallPiece]:
        """The call pieces that ``text`` (the answer's next characters) completes."""
        pieces: list[CallPiece] = []
        while text:
            text = self._step(text, pieces)
        return pieces

    def _step(self, text: str, pieces: list[CallPiece]) -> str:
        if self._state == "seek":
            seen = self._tail + text
            found = seen.find(_CALL_OPENING)
            if found == -1:
                self._tail = seen[-(len(_CALL_OPENING) - 1) :]
                return ""
            rest = seen[found + len(_CALL_OPENING) :]
            self._tail, self._state, self._name = "", "name", ""
            return rest
        if self._state == "name":
            quote = text.find('"')
            if quote == -1:
                self._name += text
                return ""
            self._name += text[:quote]
            pieces.append(CallPiece(self.calls, name=self._name))
            self.calls += 1
            self.arguments.append("")
            self._state = "key"
            return text[quote + 1 :]
        if self._state == "key":
            colon = text.find(":")
            if colon == -1:
                return ""
            self._state, self._json = "arguments", CompactJson()
            return text[colon + 1 :]
        assert self._json is not None
        out, rest = self._json.feed(text)
        if out:
            self.arguments[-1] += out
            pieces.append(CallPiece(self.calls - 1, arguments=out))
        if self._json.done:
            self._state, self._json = "seek", None
        return rest
