"""Three agent frameworks run the seed page's weather agent on Chat Completions, as a user
would: LangGraph's ``create_react_agent`` over ``langchain-openai``, the OpenAI Agents SDK with
``OpenAIChatCompletionsModel`` and pydantic-ai's OpenAI chat model, each pointed at our
``/v1``. Each sends ``tools`` again with the tool result, so each run must end in a text answer
on its own. Ten seeded runs per framework (sampling left at the framework's defaults, so the
model card's; only ``seed`` varies); at least nine must run the tool and end with text naming its
temperature. Needs the ``frameworks`` extra; a framework that is not installed is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.integration.conftest import API_KEY, QWEN, REQUEST_TIMEOUT_S
from tests.integration.serving import ServiceProcess
from tests.seed import QUESTION
from tests.seed import get_current_weather as seed_weather

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEEDS = range(10)
REQUIRED = 9
TEMPERATURE = json.loads(seed_weather("San Francisco"))["temperature"]  # "60"
# One bound for every framework: a run that answers takes 2 model requests.
MAX_TURNS = 6
# The locations the tool was called with in the current run (runs are sequential).
LOCATIONS: list[str] = []


def needs(*modules: str) -> pytest.MarkDecorator:
    """Skip (before the shared stack starts) unless every module is installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs the frameworks extra: {missing}")


def get_current_weather(location: str) -> str:
    """Get the current weather in a given location.

    Args:
        location: The city and state, e.g. San Francisco, CA
    """
    LOCATIONS.append(location)
    return seed_weather(location)


@dataclass
class Exchange:
    """One Chat Completions request body and the response body (or status and error)."""

    request: dict[str, Any]
    response: Any = None


@dataclass
class Recorder:
    """httpx event hooks keeping every Chat Completions exchange a framework makes."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        self.exchanges.append(Exchange(json.loads(request.content or b"{}")))

    async def on_response(self, response: httpx.Response) -> None:
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = response.text
        self.exchanges[-1].response = body if response.is_success else (response.status_code, body)

    def client(self) -> httpx.AsyncClient:
        hooks = {"request": [self.on_request], "response": [self.on_response]}
        return httpx.AsyncClient(event_hooks=hooks, timeout=REQUEST_TIMEOUT_S)


@dataclass
class Run:
    """What one seeded run ended with."""

    seed: int
    seconds: float
    answer: str | None  # the final text, None when the run ended without one
    error: str | None
    exchanges: list[Exchange]
    locations: list[str]  # the tool's calls

    @property
    def passed(self) -> bool:
        """The tool ran for San Francisco and the final text names its temperature."""
        called = any("san francisco" in location.lower() for location in self.locations)
        return called and self.answer is not None and TEMPERATURE in self.answer

    def summary(self) -> str:
        replies = [_reply(exchange.response) for exchange in self.exchanges]
        ending = repr(self.answer) if self.error is None else self.error
        return (
            f"seed {self.seed}: {'ok' if self.passed else 'FAIL'} {self.seconds:.1f}s "
            f"{len(self.exchanges)} requests {replies} tool ran {len(self.locations)}x "
            f"-> {ending[:160]}"
        )


def _reply(response: Any) -> str:
    """A response body in a few words: the calls it made or its finish reason."""
    if not isinstance(response, dict) or not response.get("choices"):
        return f"error {str(response)[:80]}"
    choice = response["choices"][0]
    calls = choice["message"].get("tool_calls") or []
    named = [f"{c['function']['name']}({c['function']['arguments']})" for c in calls]
    return f"{choice['finish_reason']}:{','.join(named)}" if named else choice["finish_reason"]


Agent = Callable[[str, httpx.AsyncClient, int], Awaitable[str]]


async def _runs(service: ServiceProcess, agent: Agent) -> list[Run]:
    """``agent`` once per seed, each with its own recording HTTP client."""
    runs = []
    for seed in SEEDS:
        recorder = Recorder()
        LOCATIONS.clear()
        started = time.perf_counter()
        answer, error = None, None
        async with recorder.client() as http:
            try:
                answer = await agent(f"{service.url}/v1", http, seed)
            except Exception as exc:  # the framework's own ending: turn limit, bad reply
                error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        runs.append(Run(seed, seconds, answer, error, recorder.exchanges, list(LOCATIONS)))
    return runs


def _check(name: str, runs: list[Run], transcripts: Path) -> None:
    """At least ``REQUIRED`` runs passed; every exchange is kept in ``transcripts``."""
    passed = sum(run.passed for run in runs)
    dump = [{"seed": run.seed, "exchanges": [vars(e) for e in run.exchanges]} for run in runs]
    transcripts.write_text(json.dumps(dump, indent=1), encoding="utf-8")
    report = "\n".join(run.summary() for run in runs) + f"\nrequest/response bodies: {transcripts}"
    print(f"\n{name}: {passed}/{len(runs)} runs answered with {TEMPERATURE}\n{report}")
    assert passed >= REQUIRED, f"{name}: {passed}/{len(runs)} (need {REQUIRED})\n{report}"


@needs("langchain_openai", "langgraph")
async def test_langgraph_react_agent(qwen_service: ServiceProcess, tmp_path: Path) -> None:
    import langchain_openai
    from langchain_core.tools import tool
    from langgraph import prebuilt

    weather = tool(get_current_weather)

    async def agent(base_url: str, http: httpx.AsyncClient, seed: int) -> str:
        model = langchain_openai.ChatOpenAI(
            model=QWEN,
            base_url=base_url,
            api_key=API_KEY,
            seed=seed,
            max_retries=0,
            http_async_client=http,
        )
        graph = prebuilt.create_react_agent(model, [weather])
        state = await graph.ainvoke(
            {"messages": [("user", QUESTION["content"])]},
            {"recursion_limit": 2 * MAX_TURNS + 1},
        )
        final = state["messages"][-1]
        assert final.type == "ai" and not final.tool_calls, final
        return str(final.content)

    runs = await _runs(qwen_service, agent)
    _check("LangGraph create_react_agent", runs, tmp_path / "transcripts.json")


@needs("agents")
async def test_openai_agents_chat_completions_model(
    qwen_service: ServiceProcess, tmp_path: Path
) -> None:
    import agents

    weather = agents.function_tool(get_current_weather)

    async def agent(base_url: str, http: httpx.AsyncClient, seed: int) -> str:
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key=API_KEY, max_retries=0, http_client=http
        )
        assistant = agents.Agent(
            name="Weather assistant",
            instructions="You are a helpful assistant.",
            model=agents.OpenAIChatCompletionsModel(model=QWEN, openai_client=client),
            tools=[weather],
            model_settings=agents.ModelSettings(extra_args={"seed": seed}),
        )
        config = agents.RunConfig(tracing_disabled=True)
        result = await agents.Runner.run(
            assistant, QUESTION["content"], run_config=config, max_turns=MAX_TURNS
        )
        return str(result.final_output)

    runs = await _runs(qwen_service, agent)
    _check("openai-agents OpenAIChatCompletionsModel", runs, tmp_path / "transcripts.json")


@needs("pydantic_ai")
async def test_pydantic_ai_openai_chat_model(qwen_service: ServiceProcess, tmp_path: Path) -> None:
    import pydantic_ai
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.usage import UsageLimits

    async def agent(base_url: str, http: httpx.AsyncClient, seed: int) -> str:
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key=API_KEY, max_retries=0, http_client=http
        )
        provider = OpenAIProvider(openai_client=client)
        assistant = pydantic_ai.Agent(
            OpenAIChatModel(QWEN, provider=provider),
            tools=[get_current_weather],
            model_settings={"seed": seed},
        )
        result = await assistant.run(
            QUESTION["content"], usage_limits=UsageLimits(request_limit=MAX_TURNS)
        )
        return str(result.output)

    runs = await _runs(qwen_service, agent)
    _check("pydantic-ai OpenAIChatModel", runs, tmp_path / "transcripts.json")
