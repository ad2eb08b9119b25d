"""Llama 3 JSON dialect: whole-text {"name", "parameters"} objects, optional python tag."""

from __future__ import annotations

import json

from service.toolcalls.llama3_json import Llama3JsonParser

TOOLS = {"get_current_weather", "get_time"}


def _parse(text: str, parallel: bool = True) -> tuple[str | None, list[tuple[str, dict]]]:
    out = Llama3JsonParser(TOOLS, parallel=parallel).parse(text)
    return out.content, [(c.name, json.loads(c.arguments)) for c in out.tool_calls]


def test_bare_call_and_python_tag() -> None:
    call = '{"name": "get_time", "parameters": {"tz": "UTC"}}'
    assert _parse(call) == (None, [("get_time", {"tz": "UTC"})])
    assert _parse("<|python_tag|>" + call) == (None, [("get_time", {"tz": "UTC"})])


def test_text_before_python_tag_is_content() -> None:
    text = 'Checking.<|python_tag|>{"name": "get_time", "parameters": {}}'
    assert _parse(text) == ("Checking.", [("get_time", {})])


def test_several_calls_separated_by_semicolons() -> None:
    text = (
        '{"name": "get_time", "parameters": {}}; '
        '{"name": "get_current_weather", "parameters": {"location": "X"}}'
    )
    assert [name for name, _ in _parse(text)[1]] == ["get_time", "get_current_weather"]
    assert len(_parse(text, parallel=False)[1]) == 1


def test_prose_after_json_and_unknown_names_stay_content() -> None:
    for text in (
        '{"name": "get_time", "parameters": {}} and then more',
        '{"name": "unknown", "parameters": {}}',
        '{"name": "get_time", "parameters": {"tz": ',
    ):
        assert _parse(text) == (text.strip(), [])


def test_named_prefill() -> None:
    prefill = Llama3JsonParser.named_prefill("get_time")
    assert _parse(prefill + "{}}") == (None, [("get_time", {})])
