"""What agent frameworks rely on, through the real stack and the openai SDK: loops that end
with tools re-sent, parallel calls, arguments inside the schema, ``finish_reason``."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.integration.conftest import QWEN
from tests.seed import QUESTION, WEATHER_TOOL, get_current_weather

pytestmark = pytest.mark.integration

TWO_CITIES = {"role": "user", "content": "What's the weather in San Francisco and in Tokyo?"}


def _agent_loop(client: openai.OpenAI, seed: int, max_turns: int = 4) -> str | None:
    """Run the SDK loop as frameworks do (tools sent on every turn); the final text."""
    messages: list[Any] = [QUESTION]
    for _ in range(max_turns):
        response = client.chat.completions.create(
            model=QWEN, messages=messages, tools=[WEATHER_TOOL], seed=seed, max_tokens=128
        )
        choice = response.choices[0]
        if not choice.message.tool_calls:
            assert choice.finish_reason == "stop"
            return choice.message.content
        assert choice.finish_reason == "tool_calls"
        messages.append(choice.message)
        for call in choice.message.tool_calls:
            result = get_current_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return None


@pytest.mark.slow
def test_the_agent_loop_with_tools_re_sent_ends_in_text_with_the_temperature(
    client: openai.OpenAI,
) -> None:
    answers = [_agent_loop(client, seed) for seed in range(3)]
    assert all(answer is not None and "60" in answer for answer in answers), answers


@pytest.mark.parametrize("choice", ["required", "auto"])
def test_two_cities_give_two_calls(client: openai.OpenAI, choice: str) -> None:
    """The grammar asks for a call after each one; the parser keeps the grounded new ones."""
    response = client.chat.completions.create(
        model=QWEN,
        messages=[TWO_CITIES],
        tools=[WEATHER_TOOL],
        tool_choice=choice,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=160,
    )
    choice = response.choices[0]
    calls = choice.message.tool_calls or []
    locations = [json.loads(call.function.arguments)["location"].lower() for call in calls]
    assert len(calls) >= 2 and len(set(locations)) == len(locations), locations
    assert any("san francisco" in place for place in locations)
    assert any("tokyo" in place for place in locations)
    assert choice.finish_reason == "tool_calls"


def test_parallel_tool_calls_false_gives_one_call(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model=QWEN,
        messages=[TWO_CITIES],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=96,
    )
    assert len(response.choices[0].message.tool_calls or []) == 1


def test_arguments_hold_no_undeclared_properties(client: openai.OpenAI) -> None:
    declared = set(WEATHER_TOOL["function"]["parameters"]["properties"])
    response = client.chat.completions.create(
        model=QWEN,
        messages=[QUESTION],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        n=4,
        seed=7,
        temperature=1.0,
        max_tokens=96,
    )
    for choice in response.choices:
        for call in choice.message.tool_calls or []:
            arguments = json.loads(call.function.arguments)
            assert set(arguments) <= declared and "location" in arguments, arguments
