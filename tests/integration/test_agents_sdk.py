"""The OpenAI Agents SDK's default model (``OpenAIResponsesModel``, ``POST /v1/responses``)
runs the weather agent to its answer. Needs the ``agents`` extra (``openai-agents``)."""

from __future__ import annotations

import pytest

from tests.integration.conftest import API_KEY, QWEN, REQUEST_TIMEOUT_S
from tests.integration.serving import ServiceProcess
from tests.seed import QUESTION, get_current_weather

agents = pytest.importorskip("agents")

pytestmark = pytest.mark.integration


async def test_default_agent_answers_with_the_weather(qwen_service: ServiceProcess) -> None:
    import openai

    calls: list[str] = []

    @agents.function_tool
    def get_weather(location: str) -> str:
        """Get the current weather in a given location.

        Args:
            location: The city and state, e.g. San Francisco, CA
        """
        calls.append(location)
        return get_current_weather(location)

    client = openai.AsyncOpenAI(
        base_url=f"{qwen_service.url}/v1",
        api_key=API_KEY,
        max_retries=0,
        timeout=REQUEST_TIMEOUT_S,
    )
    agent = agents.Agent(
        name="Weather assistant",
        instructions="You are a helpful assistant.",
        model=QWEN,
        tools=[get_weather],
        model_settings=agents.ModelSettings(temperature=0.0, max_tokens=128),
    )
    config = agents.RunConfig(
        model_provider=agents.OpenAIProvider(openai_client=client, use_responses=True),
        tracing_disabled=True,
    )
    async with client:
        result = await agents.Runner.run(agent, QUESTION["content"], run_config=config, max_turns=4)
    assert calls and "san francisco" in calls[0].lower()
    assert "60" in str(result.final_output)
