"""Calls the parser drops (repeats, answered calls, ungrounded extras) and the repeat guard."""

from __future__ import annotations

import json
from typing import Any

from service.toolcalls.base import canonical_call
from service.toolcalls.hermes import HermesParser
from service.toolcalls.repeats import RepeatGuard
from service.toolcalls.smollm2 import SmolLM2Parser

NAMES = {"get_current_weather", "get_time"}


def block(name: str, **arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def calls(parser: HermesParser, text: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, json.loads(c.arguments)) for c in parser.parse(text).tool_calls]


def test_identical_calls_in_one_answer_are_returned_once() -> None:
    sf = block("get_current_weather", location="SF")
    parsed = HermesParser(NAMES).parse("\n".join([sf, sf, block("get_time"), sf]))
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [
        ("get_current_weather", '{"location":"SF"}'),
        ("get_time", "{}"),
    ]
    assert (parsed.content, parsed.dropped, parsed.answered_only) == (None, 2, False)


def test_answered_calls_are_dropped_and_reported() -> None:
    answered = {canonical_call("get_current_weather", {"location": "SF"})}
    parser = HermesParser(NAMES, answered=answered)
    parsed = parser.parse(block("get_current_weather", location="SF"))
    assert (parsed.tool_calls, parsed.content, parsed.answered_only) == ([], None, True)
    # Same name, other arguments: a new call.
    assert calls(parser, block("get_current_weather", location="Paris")) == [
        ("get_current_weather", {"location": "Paris"})
    ]
    assert not parser.parse("It is sunny.").answered_only


def test_after_tool_results_every_call_must_be_grounded_and_new() -> None:
    answered = {canonical_call("get_time", {"city": "Sydney"})}
    context = 'time in sydney?\n{"time": "07:15"}'
    parser = HermesParser(NAMES | {"get_stock_price"}, answered=answered, context=context)
    for text in (
        block("get_current_weather", location="Sydney"),  # same place, tool not asked for
        block("get_stock_price", symbol="AAPL"),  # not in the conversation
    ):
        parsed = parser.parse(text)
        assert (parsed.tool_calls, parsed.answered_only) == ([], True), text
    new = HermesParser(NAMES, answered=answered, context=context + "\nand in tokyo?")
    assert calls(new, block("get_time", city="Tokyo")) == [("get_time", {"city": "Tokyo"})]


def test_canonical_calls_ignore_key_order_and_spacing() -> None:
    assert canonical_call("f", {"a": 1, "b": [1, 2]}) == canonical_call("f", {"b": [1, 2], "a": 1})


def test_extra_calls_must_be_grounded_in_the_context() -> None:
    context = "what's the weather in san francisco and in tokyo?"
    parser = HermesParser(NAMES, context=context)
    text = "\n".join(
        block("get_current_weather", location=place)
        for place in ("San Francisco, CA", "Tokyo, JP", "Los Angeles, CA", "Osaka")
    )
    assert calls(parser, text) == [
        ("get_current_weather", {"location": "San Francisco, CA"}),
        ("get_current_weather", {"location": "Tokyo, JP"}),
    ]
    # The first call is never dropped for grounding; calls without strings always pass.
    lone = HermesParser(NAMES, context="hi")
    assert calls(lone, block("get_current_weather", location="Oslo") + block("get_time")) == [
        ("get_current_weather", {"location": "Oslo"}),
        ("get_time", {}),
    ]


def test_extra_calls_of_the_same_tool_must_name_something_new() -> None:
    """Asked to go on after its calls, the model names the same place again with another
    unit, or the same amounts: such a call adds nothing the question asked for."""
    context = "weather in london in celsius and in fahrenheit? and convert 100 usd to eur."
    parser = HermesParser(NAMES | {"convert"}, context=context)
    weather = [
        block("get_current_weather", location="London", unit="celsius"),
        block("get_current_weather", location="London, UK", unit="celsius"),  # nothing new
        block("get_current_weather", location="London", unit="fahrenheit"),  # new unit
        block("get_current_weather", location="Paris", unit="celsius"),  # not grounded
        block("convert", amount=100, source="USD", target="EUR"),  # another tool: grounded
        block("convert", amount=100.0, source="usd", target="EUR"),  # nothing new
        block("convert", amount=200, source="USD", target="EUR"),  # 200 is not in the question
    ]
    assert calls(parser, "\n".join(weather)) == [
        ("get_current_weather", {"location": "London", "unit": "celsius"}),
        ("get_current_weather", {"location": "London", "unit": "fahrenheit"}),
        ("convert", {"amount": 100, "source": "USD", "target": "EUR"}),
    ]
    # A head inside an earlier one (or around it) is not new either.
    sf = HermesParser(NAMES, context="weather in san francisco?")
    text = block("get_current_weather", location="San Francisco") + block(
        "get_current_weather", location="Francisco"
    )
    assert calls(sf, text) == [("get_current_weather", {"location": "San Francisco"})]


def test_an_extra_call_about_the_same_thing_needs_its_tool_named() -> None:
    names = {"get_current_weather", "find_restaurants", "get_news", "search_web"}
    both = HermesParser(names, context="weather in sydney and restaurants in sydney.")
    text = block("get_current_weather", location="Sydney") + block(
        "find_restaurants", city="Sydney"
    )
    assert [name for name, _ in calls(both, text)] == ["get_current_weather", "find_restaurants"]
    # Nothing new and the tool not asked for: dropped ("news" is not "new").
    meta = HermesParser(names, context="check the price of meta shares in new york.")
    text = block("get_current_weather", location="Meta") + "".join(
        block(name, topic="Meta shares") for name in ("get_news", "search_web")
    )
    assert [name for name, _ in calls(meta, text)] == ["get_current_weather"]


def test_the_guard_stops_when_a_closed_block_would_be_dropped() -> None:
    guard = RepeatGuard(HermesParser(NAMES))
    sf = block("get_current_weather", location="SF")
    assert not guard.repeated(sf)
    assert not guard.repeated(sf + "\n<tool_call>\n{")
    assert not guard.repeated(sf + "\n" + block("get_time"))
    assert guard.checked == len(sf + "\n" + block("get_time"))  # the end of the blocks kept
    assert guard.repeated(sf + "\n" + block("get_time") + "\n" + sf)


def test_the_guard_ignores_dialects_with_all_calls_in_one_block() -> None:
    guard = RepeatGuard(SmolLM2Parser(NAMES))
    one = '<tool_call>[{"name": "get_time", "arguments": {}}]</tool_call>'
    assert not guard.repeated(one + one)


def test_the_guard_watches_bare_calls_at_line_ends() -> None:
    guard = RepeatGuard(HermesParser(NAMES))
    sf = '{"name": "get_current_weather", "arguments": {"location": "SF"}}'
    assert not guard.repeated(sf + "\n")
    assert not guard.repeated(f"{sf}\n{sf}")  # the line has not ended yet
    assert guard.repeated(f"{sf}\n{sf}\n")


def test_the_guard_watches_fenced_calls_and_marks_where_it_stopped() -> None:
    guard = RepeatGuard(HermesParser(NAMES, context="weather in sf?"))
    sf = '```json\n{"name": "get_current_weather", "arguments": {"location": "SF"}}\n```'
    assert not guard.repeated(sf)
    assert guard.checked == len(sf)
    again = f"{sf}\n\n{sf}"
    assert guard.repeated(again + "\n\n```json\n{")  # the rest came in the same chunk
    assert guard.stopped == len(again)


def test_checked_moves_only_where_a_kept_call_ends() -> None:
    """A fence opening, or a line end inside an indented fenced call, completes no call: a
    budget cut there must not leave a piece of the next block in ``content``."""
    guard = RepeatGuard(HermesParser(NAMES, context="weather in sf and la?"))
    call = {"name": "get_current_weather", "arguments": {"location": "SF"}}
    sf = f"```json\n{json.dumps(call, indent=2)}\n```"
    assert not guard.repeated(sf[:-4])  # "  }\n" and "}\n" inside the block
    assert guard.checked is None
    assert not guard.repeated(sf)
    assert guard.checked == len(sf)
    assert not guard.repeated(sf + '\n\n```json\n{\n  "name": "get_time",\n  "arguments": {}\n}\n')
    assert guard.checked == len(sf)
