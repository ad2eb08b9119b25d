"""Stop an answer at the first call block the parser would drop.

Small models loop: after their calls they write the same ``<tool_call>`` block again, or more
calls about places the question never named, until ``max_tokens``. The guard watches the
growing answer; each time a call block closes it parses the answer so far, and once the
parser drops a call (a repeat, or an extra call not grounded in the conversation: see
``ToolCallParser``; give it a parser without ``answered`` calls, since an answer may go on from
an answered call to new ones) generation can stop there. The parser drops the same
calls from the final answer, which then ends in its distinct calls. Dialects that write all
calls in one block or without markers are not watched, but bare calls (Hermes: one JSON call a
line) are, at each line end.
"""

from __future__ import annotations

from service.toolcalls.base import ToolCallParser


class RepeatGuard:
    """Parses only when a block closes; scans only the text added since the last call."""

    def __init__(self, parser: ToolCallParser) -> None:
        syntax = parser.syntax
        self._parser = parser
        self._close = syntax.close.strip()
        self._watched = bool(syntax.open.strip() and self._close and not syntax.separator)
        self._bare = syntax.bare  # bare call objects, one a line
        self._scanned = 0
        self._bare_scanned = 0

    def repeated(self, text: str) -> bool:
        """Whether ``text`` (the answer so far) has closed a block, or ended a bare call's
        line, that the parser drops."""
        end = -1
        if self._watched:
            close = text.find(self._close, self._scanned)
            if close != -1:
                end = self._scanned = close + len(self._close)
        if end == -1 and self._bare:
            line = text.rfind("}\n")
            if line >= self._bare_scanned:
                end = self._bare_scanned = line + 1
        return end != -1 and self._parser.parse(text[:end]).dropped > 0
