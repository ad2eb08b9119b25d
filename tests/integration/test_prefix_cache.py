"""The prefix cache through the real stack: a repeated tool set is served from the cache, with
the same answer, reported in ``usage`` and counted in ``/metrics``."""

from __future__ import annotations

import re
import urllib.request
from typing import Any

import openai
import pytest

from tests.integration.conftest import QWEN
from tests.integration.serving import ServiceProcess
from tests.seed import WEATHER_TOOL

pytestmark = pytest.mark.integration

CACHED = re.compile(r'^fncall_prompt_cached_tokens_total\{model="[^"]+"\} (\S+)$', re.MULTILINE)
SYSTEM = {"role": "system", "content": "You answer travellers' questions (prefix-cache test)."}


def _cached_counter(service: ServiceProcess) -> float:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=5) as response:
        return sum(float(v) for v in CACHED.findall(response.read().decode()))


def _ask(client: openai.OpenAI, question: str) -> Any:
    return client.chat.completions.create(
        model=QWEN,
        messages=[SYSTEM, {"role": "user", "content": question}],  # type: ignore[list-item]
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        temperature=0.0,
        max_tokens=64,
    )


def _answer(response: Any) -> tuple[Any, ...]:
    message = response.choices[0].message
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return message.content, calls, response.choices[0].finish_reason


def test_a_repeated_tool_set_is_served_from_the_prefix_cache(
    client: openai.OpenAI, qwen_service: ServiceProcess
) -> None:
    before = _cached_counter(qwen_service)
    first = _ask(client, "What is the weather in Lisbon?")
    again = _ask(client, "What is the weather in Lisbon?")
    other = _ask(client, "How warm is it in Oslo today?")
    assert first.usage and again.usage and other.usage
    first_cached = first.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    again_cached = again.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    other_cached = other.usage.prompt_tokens_details.cached_tokens  # type: ignore[union-attr]
    assert again_cached == again.usage.prompt_tokens - 2  # all but the computed tail
    assert 100 < other_cached < other.usage.prompt_tokens  # the system turn and its tools
    assert _answer(again) == _answer(first)
    calls = other.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_current_weather"
    assert _cached_counter(qwen_service) - before == first_cached + again_cached + other_cached
