"""CallStream: grammar-certain calls streamed as they are written, adding up to the parser's."""

from __future__ import annotations

import json

import pytest

from service.toolcalls import parser_class
from service.toolcalls.call_stream import CallStream, CompactJson

ARGUMENTS = [
    {"location": "San Francisco, CA"},
    {"city": "東京", "n": [1, 2.5, -3e2, 0], "ok": True, "none": None, "f": False},
    {"q": 'say "hi" \\ then\nnew line\ttab', "e": "é", "emoji": "😀", "slash": "a/b"},
    {"nested": {"a": {"b": [{}, []]}}, "empty": ""},
]
# How a model may spell the same values (escapes, exponents, spacing).
SPELLED = [
    '{"q": "caf\\u00e9 \\/ \\ud83d\\ude00 \\"x\\"", "n": 1E2, "m": -0.50}',
    '{ "a" : [ 1 , 2 ] ,"b":{"c":true}}',
]


def _in_pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize(
    "spelled", [json.dumps(a, ensure_ascii=False) for a in ARGUMENTS] + SPELLED
)
def test_compact_json_matches_json_dumps_at_every_split(spelled: str, size: int) -> None:
    writer, out, rest = CompactJson(), "", ""
    for piece in _in_pieces(spelled + "}\n</tool_call>", size):
        if writer.done:
            rest += piece
            continue
        written, left = writer.feed(piece)
        out += written
        rest += left
    expected = json.dumps(json.loads(spelled), ensure_ascii=False, separators=(",", ":"))
    assert writer.done and out == expected and rest == "}\n</tool_call>"


@pytest.mark.parametrize("dialect", ["hermes", "smollm2", "llama3_json"])
@pytest.mark.parametrize("size", [1, 4, 1000])
def test_forced_calls_stream_to_the_parsed_calls(dialect: str, size: int) -> None:
    parser = parser_class(dialect)
    calls = [("get_current_weather", ARGUMENTS[0]), ("get_time", ARGUMENTS[1])]
    text = parser.format_calls(calls)
    stream, names = CallStream(), []
    prefill = parser.required_prefill
    assert text.startswith(prefill)
    for piece in [prefill, *_in_pieces(text[len(prefill) :], size)]:
        for call in stream.feed(piece):
            if call.name is not None:
                names.append(call.name)
    parsed = parser({"get_current_weather", "get_time"}).parse(text).tool_calls
    assert names == [call.name for call in parsed]
    assert stream.arguments == [call.arguments for call in parsed]
