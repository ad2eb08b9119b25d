"""Constrained decoding on the real default model: every forced call parses and validates.

Varied tool schemas (nested objects, arrays with bounds, enums, bounded numbers, patterns,
optional fields, a tool without parameters, several tools per request), forced with
``tool_choice: required`` and named choices, greedy and at temperature 1 over many seeded
choices; every call is checked with ``jsonschema`` against its tool's schema. Runs on the
session's shared ``fncall serve`` stack through the ``openai`` SDK.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from service.grammar import NO_PARAMETERS
from tests.integration.conftest import QWEN

pytestmark = pytest.mark.integration

MAX_TOKENS = 256
SAMPLED: dict[str, Any] = {"temperature": 1.0, "n": 8, "max_tokens": MAX_TOKENS}
GREEDY: dict[str, Any] = {"temperature": 0.0, "max_tokens": MAX_TOKENS}


def _tool(name: str, description: str, parameters: dict[str, Any] | None = None) -> Any:
    function: dict[str, Any] = {"name": name, "description": description}
    if parameters is not None:
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


CABIN = {"type": "string", "enum": ["economy", "business"]}
TOOLSETS: dict[str, tuple[list[Any], str]] = {
    "travel": (
        [
            _tool(
                "get_weather",
                "Current weather for a city",
                _object(
                    ["city", "unit"],
                    city={"type": "string"},
                    unit={"type": "string", "enum": ["celsius", "fahrenheit"]},
                ),
            ),
            _tool(
                "book_flight",
                "Book a flight",
                _object(
                    ["origin", "destination", "passengers", "legs"],
                    origin={"type": "string"},
                    destination={"type": "string"},
                    passengers={"type": "integer", "minimum": 1, "maximum": 9},
                    legs={
                        "type": "array",
                        "items": _object(["date", "cabin"], date={"type": "string"}, cabin=CABIN),
                        "minItems": 1,
                        "maxItems": 2,
                    },
                ),
            ),
        ],
        "Book a flight from Paris to Rome for 2 people on 2025-03-01, business class.",
    ),
    "shop": (
        [
            _tool(
                "search_products",
                "Search the catalog",
                _object(
                    ["query"],
                    query={"type": "string"},
                    max_price={"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
                    tags={"type": "array", "items": {"type": "string"}, "maxItems": 3},
                    sort={"type": "string", "enum": ["price", "rating", "newest"]},
                ),
            ),
            _tool(
                "add_to_cart",
                "Add an item to the cart",
                _object(
                    ["sku", "quantity"],
                    sku={"type": "string"},
                    quantity={"type": "integer", "minimum": 1, "maximum": 10},
                    options=_object(
                        [],
                        color={"type": "string", "enum": ["red", "blue", "black"]},
                        gift_wrap={"type": "boolean"},
                    ),
                ),
            ),
        ],
        "Find me running shoes under 120 dollars, sorted by rating.",
    ),
    "calendar": (
        [
            _tool(
                "create_event",
                "Create a calendar event",
                _object(
                    ["title", "start", "duration_minutes"],
                    title={"type": "string"},
                    start={"type": "string"},
                    duration_minutes={"type": "integer", "minimum": 5, "maximum": 480},
                    attendees={
                        "type": "array",
                        "items": _object(
                            ["email"], email={"type": "string"}, optional={"type": "boolean"}
                        ),
                    },
                ),
            ),
            _tool(
                "cancel_event",
                "Cancel an event by id",
                _object(
                    ["event_id"],
                    event_id={"type": "string", "pattern": "^evt_[0-9]{3,8}$"},
                    notify={"type": "boolean"},
                ),
            ),
            _tool("list_events", "List today's events"),
        ],
        "Schedule a 30 minute sync called Roadmap tomorrow at 10:00 with ana@example.com.",
    ),
}


def _complete(client: openai.OpenAI, toolset: str, **options: Any) -> Any:
    tools, question = TOOLSETS[toolset]
    return client.chat.completions.create(
        model=QWEN, messages=[{"role": "user", "content": question}], tools=tools, **options
    )


def _valid_calls(toolset: str, choice: Any) -> list[str]:
    """The names of the choice's calls, after checking each against its tool's schema."""
    schemas = {
        tool["function"]["name"]: tool["function"].get("parameters", NO_PARAMETERS)
        for tool in TOOLSETS[toolset][0]
    }
    assert choice.finish_reason == "tool_calls", choice
    names = []
    for call in choice.message.tool_calls:
        jsonschema.validate(json.loads(call.function.arguments), schemas[call.function.name])
        names.append(call.function.name)
    assert names
    return names


@pytest.mark.parametrize("toolset", sorted(TOOLSETS))
def test_required_calls_validate_greedy_and_sampled(client: openai.OpenAI, toolset: str) -> None:
    for options in (GREEDY, {**SAMPLED, "seed": 11}):
        response = _complete(client, toolset, tool_choice="required", **options)
        assert len(response.choices) == options.get("n", 1)
        for choice in response.choices:
            _valid_calls(toolset, choice)


@pytest.mark.parametrize(
    ("toolset", "name"),
    [(name, tool["function"]["name"]) for name, (tools, _) in TOOLSETS.items() for tool in tools],
)
def test_named_choice_calls_exactly_that_tool_validly(
    client: openai.OpenAI, toolset: str, name: str
) -> None:
    named = {"type": "function", "function": {"name": name}}
    response = _complete(client, toolset, tool_choice=named, **{**SAMPLED, "n": 4, "seed": 5})
    for choice in response.choices:
        assert _valid_calls(toolset, choice) == [name]


def test_parallel_tool_calls_false_yields_exactly_one_call(client: openai.OpenAI) -> None:
    response = _complete(
        client, "calendar", tool_choice="required", parallel_tool_calls=False, **SAMPLED, seed=3
    )
    for choice in response.choices:
        assert len(_valid_calls("calendar", choice)) == 1


def test_auto_calls_are_declared_and_valid_or_the_answer_is_text(client: openai.OpenAI) -> None:
    response = _complete(client, "shop", **SAMPLED, seed=21)
    for choice in response.choices:
        if choice.message.tool_calls:
            _valid_calls("shop", choice)
        else:
            assert choice.message.content and "<tool_call>" not in choice.message.content


def test_response_format_json_schema_answers_validate(client: openai.OpenAI) -> None:
    schema = _object(
        ["name", "age", "languages"],
        name={"type": "string"},
        age={"type": "integer", "minimum": 0, "maximum": 150},
        languages={"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    )
    response = client.chat.completions.create(
        model=QWEN,
        messages=[{"role": "user", "content": "Describe a fictional programmer."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema, "strict": True},
        },
        **{**SAMPLED, "n": 4, "seed": 9},
    )
    for choice in response.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content), schema)


def test_a_schema_keyword_that_cannot_be_enforced_is_a_400(client: openai.OpenAI) -> None:
    tool = _tool("tag", "Tag it", {"type": "object", "properties": {"tags": {"uniqueItems": True}}})
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(
            model=QWEN, messages=[{"role": "user", "content": "hi"}], tools=[tool]
        )
    body: Any = error.value.body
    assert body["param"] == "tools[0].function.parameters"
    assert "uniqueItems" in body["message"]
