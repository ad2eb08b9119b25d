"""How much of a growing answer may stream as ``content`` before the parser sees it whole.

The parsers stay whole-text (``ToolCallParser.parse``). While an answer is being generated, each
dialect says where a call *may begin* (``ToolCallParser.call_start``: an opening marker, a prefix
of one at the end of the text, a bare ``{`` opening the answer, a fenced block); text before that
point can never be part of a call, so it streams. From that point on the text is held back, and
at the end the parser decides: calls become ``tool_calls``, the rest of ``content`` is flushed.

Streamed content is always a prefix of the parser's ``content`` (which is stripped): leading
whitespace and the whitespace at the end of the streamed part wait until text follows them. The
scan resumes where the last one proved no call could begin, so the work is linear in the answer.
"""

from __future__ import annotations

from collections.abc import Callable

from service.toolcalls.base import skip_space

#: ``call_start(text, position)``: the first index >= ``position`` at which a call may begin in
#: ``text`` (or in any longer text starting with it), ``None`` when there is none. The caller
#: guarantees no call may begin before ``position``.
CallStart = Callable[[str, int], "int | None"]


def marker_start(text: str, position: int, marker: str) -> int | None:
    """Where ``marker`` occurs first from ``position``, or where a prefix of it ends ``text``."""
    found = text.find(marker, position)
    if found != -1:
        return found
    for length in range(min(len(marker) - 1, len(text) - position), 0, -1):
        if text.endswith(marker[:length]):
            return len(text) - length
    return None


def bare_start(text: str, position: int) -> int | None:
    """Where a bare JSON call (``{`` or a ``[`` list) opens the answer, after whitespace."""
    first = skip_space(text, 0)
    if position <= first < len(text) and text[first] in "{[":
        return first
    return None


def earliest(*starts: int | None) -> int | None:
    found = [start for start in starts if start is not None]
    return min(found) if found else None


class HoldBack:
    """The content of one answer that is safe to stream, given the dialect's ``call_start``.

    ``call_start`` ``None``: no calls are parsed (no tools), every settled character streams
    as it is. Otherwise content is stripped as the parsers strip it.
    """

    def __init__(self, call_start: CallStart | None) -> None:
        self._call_start = call_start
        self._scanned = 0  # no call may begin in text[:_scanned]
        self._begin: int | None = None  # the first non-whitespace character (tools only)
        self.streamed = ""  # the content streamed so far

    def release(self, text: str, settled: int) -> str:
        """New content to stream; ``text[:settled]`` will not change any more (stop strings)."""
        if self._call_start is None:
            new = text[len(self.streamed) : settled]
            self.streamed += new
            return new
        start = self._call_start(text, self._scanned)
        limit = settled if start is None else min(start, settled)
        self._scanned = limit
        floor = 0 if self._begin is None else self._begin + len(self.streamed)
        end = limit
        while end > floor and text[end - 1].isspace():
            end -= 1
        if self._begin is None:
            stripped = text[:end].lstrip()
            if not stripped:
                return ""
            self._begin = end - len(stripped)
        new = text[self._begin + len(self.streamed) : end]
        self.streamed += new
        return new

    def rest(self, content: str | None) -> str:
        """What is left to stream of the final ``content`` (the parser's)."""
        content = content or ""
        if not content.startswith(self.streamed):  # pragma: no cover - a bug, never a loss
            raise AssertionError("streamed content is not a prefix of the parsed content")
        return content[len(self.streamed) :]
