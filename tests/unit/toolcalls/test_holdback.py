"""Hold-back: what of a growing answer streams as content, per dialect, at every split."""

from __future__ import annotations

import pytest

from service.toolcalls import parser_class
from service.toolcalls.holdback import HoldBack

TOOLS = {"get_current_weather", "get_time"}
WEATHER = '{"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}'
LLAMA_WEATHER = '{"name": "get_current_weather", "parameters": {"location": "Paris, FR"}}'

# (dialect, answer, what streams before the end at the latest, final content)
CASES = [
    ("hermes", "Hello! How can I help?", "Hello! How can I help?", "Hello! How can I help?"),
    ("hermes", f"<tool_call>\n{WEATHER}\n</tool_call>", "", None),
    (
        "hermes",
        f"Let me check.\n<tool_call>\n{WEATHER}\n</tool_call>",
        "Let me check.",
        "Let me check.",
    ),
    (
        "hermes",
        f"Checking.\n<tool_call>\n{WEATHER}\n</tool_call>\nDone.",
        "Checking.",
        "Checking.\n\nDone.",
    ),
    ("hermes", f"  \n{WEATHER}", "", None),  # bare JSON call
    ("hermes", f"[{WEATHER}]", "", None),  # a bare list
    ("hermes", f"Sure:\n```json\n{WEATHER}\n```\nok", "Sure:", "Sure:\n\nok"),  # fenced
    ("hermes", '{"answer": 42} is JSON', "", '{"answer": 42} is JSON'),  # a false start
    ("hermes", "Use a <tool> tag or < signs", "Use a <tool> tag or < signs", None),
    ("hermes", "Code:\n```python\nprint(1)\n```\nbye", "Code:\n```python\nprint(1)", None),
    ("hermes", "a <tool_call> that is not JSON", "a", "a <tool_call> that is not JSON"),
    ("smollm2", f"<tool_call>[{WEATHER}]</tool_call>", "", None),
    ("smollm2", f"Ok. <tool_call>[{WEATHER}]</tool_call>", "Ok.", "Ok."),
    ("smollm2", "{not a call} in text", "{not a call} in text", None),
    ("llama3_json", LLAMA_WEATHER, "", None),
    ("llama3_json", f"Calling.<|python_tag|>{LLAMA_WEATHER}", "Calling.", "Calling."),
    ("llama3_json", "Plain answer, no call.", "Plain answer, no call.", None),
]


def _final(dialect: str, text: str) -> str | None:
    return parser_class(dialect)(TOOLS).parse(text).content


@pytest.mark.parametrize(("dialect", "text", "early", "content"), CASES)
def test_every_split_streams_a_prefix_and_ends_in_the_parsed_content(
    dialect: str, text: str, early: str, content: str | None
) -> None:
    final = _final(dialect, text)
    expected = content if content is not None else (None if not early else text.strip())
    assert final == expected
    call_start = parser_class(dialect).call_start
    # One character at a time (the finest token split) ...
    holdback = HoldBack(call_start)
    streamed = "".join(holdback.release(text[:end], end) for end in range(1, len(text) + 1))
    assert streamed == early
    assert streamed + holdback.rest(final) == (final or "")
    # ... and in two pieces split at every position.
    for cut in range(len(text) + 1):
        holdback = HoldBack(call_start)
        first = holdback.release(text[:cut], cut)
        streamed = first + holdback.release(text, len(text))
        assert (final or "").startswith(streamed)
        assert streamed + holdback.rest(final) == (final or "")


def test_unsettled_text_waits_for_a_stop_string_to_resolve() -> None:
    holdback = HoldBack(None)
    assert holdback.release("Hello EN", settled=6) == "Hello "
    assert holdback.release("Hello ENOUGH", settled=12) == "ENOUGH"


def test_without_tools_whitespace_streams_as_it_is() -> None:
    holdback = HoldBack(None)
    assert holdback.release("  a\n", 4) == "  a\n"
    assert holdback.rest("  a\n") == ""


def test_call_markup_never_streams() -> None:
    text = f"Hi <tool_call>\n{WEATHER}\n</tool_call>"
    for dialect in ("hermes", "smollm2"):
        holdback = HoldBack(parser_class(dialect).call_start)
        streamed = "".join(holdback.release(text[:end], end) for end in range(1, len(text) + 1))
        assert streamed == "Hi" and "<" not in streamed
