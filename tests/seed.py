"""The seed page's weather example, shared by the tests: its tool, question and function."""

from __future__ import annotations

import json
from typing import Any

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "location": {
            "type": "string",
            "description": "The city and state, e.g. San Francisco, CA",
        }
    },
    "required": ["location"],
}
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": WEATHER_PARAMETERS,
    },
}
QUESTION: dict[str, Any] = {"role": "user", "content": "What is the weather in San Francisco?"}


def get_current_weather(location: str) -> str:
    """The seed page's client-side function."""
    for city, temperature in (("tokyo", "75"), ("san francisco", "60"), ("paris", "70")):
        if city in location.lower():
            return json.dumps({"location": city.title(), "temperature": temperature})
    return json.dumps({"location": location, "temperature": "unknown"})
