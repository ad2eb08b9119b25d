"""Hermes/Qwen dialect: tagged calls, bare/fenced JSON fallbacks, malformed and adversarial text."""

from __future__ import annotations

import json
import re

import pytest

from service.toolcalls.hermes import HermesParser

TOOLS = {"get_current_weather", "get_time"}
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")


def _parse(text: str, parallel: bool = True) -> tuple[str | None, list[tuple[str, dict]]]:
    out = HermesParser(TOOLS, parallel=parallel).parse(text)
    for call in out.tool_calls:
        assert CALL_ID.match(call.id)
    return out.content, [(c.name, json.loads(c.arguments)) for c in out.tool_calls]


def test_one_tagged_call() -> None:
    text = (
        '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "SF"}}\n'
        "</tool_call>"
    )
    assert _parse(text) == (None, [("get_current_weather", {"location": "SF"})])


def test_arguments_are_compact_json_with_unicode_kept() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": {"city": "東京", "n": [1, 2]}}</tool_call>'
    (call,) = HermesParser(TOOLS).parse(text).tool_calls
    assert call.arguments == '{"city":"東京","n":[1,2]}'


def test_text_around_calls_stays_content_and_ids_differ() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_current_weather", "arguments": {"location": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "parameters": {}}\n</tool_call>\nDone.'
    )
    out = HermesParser(TOOLS).parse(text)
    assert out.content == "Let me check.\n\n\nDone."
    assert [c.name for c in out.tool_calls] == ["get_current_weather", "get_time"]
    assert out.tool_calls[0].id != out.tool_calls[1].id


def test_tags_and_braces_inside_json_strings() -> None:
    args = {"q": "</tool_call> {not json} <tool_call>", "nested": {"a": {"b": "}"}}}
    body = json.dumps({"name": "get_time", "arguments": args})
    assert _parse(f"<tool_call>{body}</tool_call>") == (None, [("get_time", args)])


def test_unknown_function_stays_content() -> None:
    text = '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>'
    assert _parse(text) == (text, [])


@pytest.mark.parametrize(
    "arguments", ['"not an object"', "[1, 2]", '"{\\"broken"', "null"], ids=str
)
def test_non_object_arguments_stay_content(arguments: str) -> None:
    text = f'<tool_call>{{"name": "get_time", "arguments": {arguments}}}</tool_call>'
    assert _parse(text) == (text, [])


def test_arguments_given_as_a_json_string_are_decoded() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": "{\\"tz\\": \\"UTC\\"}"}</tool_call>'
    assert _parse(text) == (None, [("get_time", {"tz": "UTC"})])


def test_truncated_json_stays_content_and_next_call_still_parses() -> None:
    broken = '<tool_call>\n{"name": "get_time", "arguments": {"tz": "UT\n</tool_call>'
    good = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    assert _parse(broken + "\n" + good) == (broken, [("get_time", {})])


def test_truncated_at_end_of_text() -> None:
    text = 'Sure <tool_call>{"name": "get_time", "arguments": {"tz"'
    assert _parse(text) == (text, [])


def test_missing_closing_tag_at_end_is_accepted() -> None:
    assert _parse('<tool_call>{"name": "get_time", "arguments": {}}\n') == (
        None,
        [("get_time", {})],
    )


def test_junk_between_json_and_closing_tag_stays_content() -> None:
    text = '<tool_call>{"name": "get_time", "arguments": {}}}</tool_call>'
    assert _parse(text) == (text, [])


def test_list_inside_tags_with_one_bad_call_keeps_the_span_as_content() -> None:
    text = (
        '<tool_call>[{"name": "get_time", "arguments": {}}, {"name": "nope", "arguments": {}}]'
        "</tool_call>"
    )
    assert _parse(text) == (text, [])


def test_bare_json_object() -> None:
    text = '  {"name": "get_current_weather", "arguments": {"location": "Tokyo"}}\n'
    assert _parse(text) == (None, [("get_current_weather", {"location": "Tokyo"})])


def test_bare_objects_and_bare_list() -> None:
    one = '{"name": "get_time", "arguments": {}}'
    two = '{"name": "get_current_weather", "arguments": {"location": "Tokyo"}}'
    expected = [("get_time", {}), ("get_current_weather", {"location": "Tokyo"})]
    assert _parse(f"{one}\n{two}")[1] == expected
    assert _parse(f"[{one}, {two}]")[1] == expected


def test_fenced_json_with_text_around() -> None:
    text = 'Here:\n```json\n{"name": "get_time", "parameters": {"tz": "CET"}}\n```\nok'
    assert _parse(text) == ("Here:\n\nok", [("get_time", {"tz": "CET"})])


def test_bare_json_with_prose_is_not_a_call() -> None:
    text = 'The call would be {"name": "get_time", "arguments": {}} I think.'
    assert _parse(text) == (text, [])


def test_plain_answer_and_empty_text() -> None:
    assert _parse("  It is 60 degrees.  ") == ("It is 60 degrees.", [])
    assert _parse("") == (None, [])


def test_parallel_false_keeps_only_the_first_call_and_drops_the_rest_everywhere() -> None:
    first = '<tool_call>{"name": "get_time", "arguments": {"n": 1}}</tool_call>'
    second = (
        '<tool_call>{"name": "get_current_weather", "arguments": {"location": "X"}}</tool_call>'
    )
    assert _parse(f"A {first} B {second} C", parallel=False) == (
        "A  B  C",
        [("get_time", {"n": 1})],
    )


def test_named_prefill_continues_into_a_call() -> None:
    prefill = HermesParser.named_prefill("get_time")
    assert prefill == '<tool_call>\n{"name": "get_time", "arguments":'
    assert _parse(prefill + '{"tz": "UTC"}}\n</tool_call>') == (None, [("get_time", {"tz": "UTC"})])


def test_required_prefill_continues_into_a_call() -> None:
    text = HermesParser.required_prefill + 'get_time", "arguments": {}}\n</tool_call>'
    assert _parse(text) == (None, [("get_time", {})])


def test_many_openings_without_json_are_fast() -> None:
    text = "<tool_call>[" * 20000 + "x"
    assert _parse(text) == (text, [])


def test_deeply_nested_open_lists_are_linear() -> None:
    text = ("<tool_call>" + "[" * 50) * 2000
    assert _parse(text)[1] == []


def test_an_arguments_check_keeps_failing_calls_in_content() -> None:
    text = (
        '<tool_call>\n{"name": "get_time", "arguments": {"city": "Oslo"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {"city": 7}}\n</tool_call>'
    )
    out = HermesParser(
        TOOLS, check_arguments=lambda name, args: isinstance(args.get("city"), str)
    ).parse(text)
    assert [json.loads(c.arguments) for c in out.tool_calls] == [{"city": "Oslo"}]
    assert (
        out.content == '<tool_call>\n{"name": "get_time", "arguments": {"city": 7}}\n</tool_call>'
    )
