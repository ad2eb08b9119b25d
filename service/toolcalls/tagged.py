"""Spans between an opening and a closing tag (``<tool_call>…</tool_call>``), scanned linearly.

After the opening tag comes one JSON value (an object or a list of objects), then the closing tag;
a missing closing tag is accepted at the end of the text (generation stopped right after the
JSON). Each JSON value is decoded once with ``raw_decode``; after a failed decode the scan resumes
where the decoder gave up, so the whole scan stays linear in the text length.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from service.toolcalls.base import Span, as_candidates, skip_space

_DECODER = json.JSONDecoder()


def tagged_spans(text: str, opening: str, closing: str) -> Iterator[Span]:
    """Every ``opening JSON closing`` span in ``text``."""
    position = text.find(opening)
    while position != -1:
        start = skip_space(text, position + len(opening))
        try:
            value, end = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as error:
            position = text.find(opening, max(error.pos, position + len(opening)))
            continue
        after = skip_space(text, end)
        if text.startswith(closing, after):
            yield Span(position, after + len(closing), as_candidates(value))
        elif after == len(text):
            yield Span(position, after, as_candidates(value))
        position = text.find(opening, end)
