"""Prompts are laid out for the model's prefix cache: the same tools and system message encode
to the same leading token ids across requests and across the turns of a conversation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.models import ServedModel
from service.prompting.chat_prompt import build_prompt
from service.protocol import parse_request
from tests.seed import WEATHER_TOOL
from tests.unit.served import served_model

TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current local time in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
SYSTEM = {"role": "system", "content": "You are a concise assistant for travellers."}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_current_weather", "arguments": '{"location": "Paris"}'},
}


def _ids(model: ServedModel, messages: list[dict[str, Any]], **body: Any) -> list[int]:
    request = {"model": model.id, "messages": messages, "tools": TOOLS, **body}
    return build_prompt(model, parse_request(request)).ids


def _shared(a: list[int], b: list[int]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _tools_turn(model: ServedModel) -> int:
    """Token count of the prompt up to the end of the text naming the last tool."""
    ids = _ids(model, [SYSTEM, {"role": "user", "content": "hi"}])
    text = model.tokenizer.decode(ids, skip_special_tokens=False)
    marker = json.dumps(TIME_TOOL["function"]["description"])[1:-1]
    assert marker in text
    for end in range(1, len(ids) + 1):
        if marker in model.tokenizer.decode(ids[:end], skip_special_tokens=False):
            return end
    raise AssertionError("unreachable")


@pytest.mark.parametrize("triton_model", ["llm", "smollm2"])
def test_requests_with_the_same_tools_share_the_tool_section(triton_model: str) -> None:
    model = served_model(triton_model)
    paris = _ids(model, [SYSTEM, {"role": "user", "content": "Weather in Paris?"}])
    tokyo = _ids(model, [SYSTEM, {"role": "user", "content": "What time is it in Tokyo?"}])
    forced = _ids(
        model, [SYSTEM, {"role": "user", "content": "Time in Oslo?"}], tool_choice="required"
    )
    tools_turn = _tools_turn(model)
    assert tools_turn > 100  # the tool section is what the cache saves
    assert _shared(paris, tokyo) >= tools_turn
    assert _shared(paris, forced) >= tools_turn


@pytest.mark.parametrize("triton_model", ["llm", "smollm2"])
def test_each_turn_of_a_conversation_extends_the_previous_prompt(triton_model: str) -> None:
    model = served_model(triton_model)
    turn1 = [SYSTEM, {"role": "user", "content": "Weather in Paris?"}]
    turn2 = [
        *turn1,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": "18 C"}'},
    ]
    turn3 = [
        *turn2,
        {"role": "assistant", "content": "It is 18 C in Paris."},
        {"role": "user", "content": "And what time is it there?"},
    ]
    first, second, third = (_ids(model, turn) for turn in (turn1, turn2, turn3))
    # Every turn's prompt starts with the whole previous prompt (assistant opening included).
    assert second[: len(first)] == first
    assert third[: len(second)] == second
