"""SmolLM2 dialect: a JSON list of calls inside <tool_call> tags."""

from __future__ import annotations

import json

from service.toolcalls.smollm2 import SmolLM2Parser

TOOLS = {"get_current_weather", "get_time"}


def _parse(text: str) -> tuple[str | None, list[tuple[str, dict]]]:
    out = SmolLM2Parser(TOOLS).parse(text)
    return out.content, [(c.name, json.loads(c.arguments)) for c in out.tool_calls]


def test_list_of_calls() -> None:
    text = (
        '<tool_call>[{"name": "get_current_weather", "arguments": {"location": "Paris"}}, '
        '{"name": "get_time", "arguments": {}}]</tool_call>'
    )
    assert _parse(text) == (
        None,
        [("get_current_weather", {"location": "Paris"}), ("get_time", {})],
    )


def test_single_object_and_text_around() -> None:
    text = 'ok <tool_call>{"name": "get_time", "arguments": {"tz": "Ω"}}</tool_call> bye'
    assert _parse(text) == ("ok  bye", [("get_time", {"tz": "Ω"})])


def test_bare_json_is_not_a_smollm2_call() -> None:
    text = '[{"name": "get_time", "arguments": {}}]'
    assert _parse(text) == (text, [])


def test_malformed_and_unknown_stay_content() -> None:
    text = (
        '<tool_call>[{"name": "get_time", "arguments": {</tool_call> '
        '<tool_call>[{"name": "x", "arguments": {}}]</tool_call>'
    )
    assert _parse(text) == (text, [])


def test_empty_list_is_not_a_call() -> None:
    assert _parse("<tool_call>[]</tool_call>") == ("<tool_call>[]</tool_call>", [])


def test_prefills_and_history_format_round_trip() -> None:
    named = SmolLM2Parser.named_prefill("get_time")
    assert _parse(named + '{"a": 1}}]</tool_call>') == (None, [("get_time", {"a": 1})])
    written = SmolLM2Parser.format_calls([("get_time", {"a": "é"})])
    assert written == '<tool_call>[{"name": "get_time", "arguments": {"a": "é"}}]</tool_call>'
    assert _parse(written) == (None, [("get_time", {"a": "é"})])
