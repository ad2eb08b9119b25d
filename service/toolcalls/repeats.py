"""Stop an answer at the first call block the parser would drop.

Small models loop: after their calls they write the same ``<tool_call>`` block again, or more
calls about places the question never named, until ``max_tokens``. The guard watches the
growing answer; each time a call block closes it parses the answer so far, and once the
parser drops a call (a repeat, or an extra call not grounded in the conversation: see
``ToolCallParser``; give it a parser without ``answered`` calls, since an answer may go on from
an answered call to new ones) generation can stop there. The parser drops the same
calls from the final answer, which then ends in its distinct calls. Dialects that write all
calls in one block or without markers are not watched, but bare calls (Hermes: one JSON call a
line) are, at each line end, and fenced ones (Hermes: ```` ```json ```` blocks in text) at each
fence. Text after the block that stopped the answer (tokens that came in the same chunk) is
not part of the answer (``stopped``).
"""

from __future__ import annotations

from service.toolcalls.base import ToolCallParser


class RepeatGuard:
    """Parses only when a block closes; scans only the text added since the last check."""

    def __init__(self, parser: ToolCallParser) -> None:
        syntax = parser.syntax
        self._parser = parser
        close = syntax.close.strip()
        self._markers = [close] if syntax.open.strip() and close and not syntax.separator else []
        if syntax.fenced:
            self._markers.append("```")
        self._scanned = dict.fromkeys(self._markers, 0)
        self._bare = syntax.bare  # bare call objects, one a line
        self._bare_scanned = 0
        self.checked: int | None = None  # where the last call checked and kept ends
        self.stopped: int | None = None  # where the block that stopped the answer ends
        self._calls = 0  # calls kept up to ``checked``

    def repeated(self, text: str) -> bool:
        """Whether ``text`` (the answer so far) has closed a block, or ended a bare call's
        line, that the parser drops (checked at each such end in turn). ``checked`` moves to an
        end that completes a call, or that leaves no text outside calls (a closing tag after a
        call already complete); a fence opening, or a line end inside a fenced call, moves
        nothing."""
        for end in self._ends(text):
            parsed = self._parser.parse(text[:end])
            if parsed.dropped > 0:
                self.stopped = end
                return True
            calls = len(parsed.tool_calls)
            if calls and (calls > self._calls or parsed.content is None):
                self._calls = calls
                self.checked = end
        return False

    def _ends(self, text: str) -> list[int]:
        """Where markers end in the text added since the last call, in order."""
        ends = set()
        for marker in self._markers:
            found = text.find(marker, self._scanned[marker])
            while found != -1:
                ends.add(found + len(marker))
                found = text.find(marker, found + len(marker))
            self._scanned[marker] = max(self._scanned[marker], len(text) - len(marker) + 1)
        if self._bare:
            line = text.find("}\n", self._bare_scanned)
            while line != -1:
                ends.add(line + 1)
                line = text.find("}\n", line + 1)
            self._bare_scanned = max(self._bare_scanned, len(text) - 1)
        return sorted(ends)
