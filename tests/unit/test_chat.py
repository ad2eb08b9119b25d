"""ChatService end to end over a fake engine that replays scripted text as real Qwen token ids."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from tokenizers import Tokenizer

from service.chat import ChatService
from service.errors import InvalidRequest, ModelNotFound, NotFound, Overloaded
from service.generation import FinishReason, GenerationChunk, SamplingParams
from service.models import ModelRegistry, ServedModel
from tests.seed import QUESTION, WEATHER_TOOL
from tests.unit.served import REPOSITORY, served_model

WEATHER = WEATHER_TOOL
TIME: dict[str, Any] = {"type": "function", "function": {"name": "get_time"}}
CALL_ID = re.compile(r"^call_[A-Za-z0-9]{24}$")


@dataclass
class Script:
    """What one generation yields: ``text`` in chunks, then ``finish``; ``block`` waits forever."""

    text: str
    finish: FinishReason = "stop"
    block: bool = False
    error: Exception | None = None
    step: int = 3  # token ids per engine chunk


@dataclass
class Stream:
    """The engine's stream; counts ``aclose`` calls (TritonEngine cancels the request there)."""

    engine: FakeEngine
    chunks: AsyncGenerator[GenerationChunk, None]

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> GenerationChunk:
        return await self.chunks.__anext__()

    async def aclose(self) -> None:
        self.engine.aclose_calls += 1
        await self.chunks.aclose()


@dataclass
class FakeEngine:
    """An Engine whose generations replay scripts (one per call, the last one repeats)."""

    tokenizer: Tokenizer
    scripts: list[Script]
    requests: list[tuple[str, list[int], SamplingParams]] = field(default_factory=list)
    closed_early: int = 0  # generations interrupted (closed or cancelled) before their end
    aclose_calls: int = 0
    finished: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def ids(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def generate(
        self, model: str, prompt_ids: Sequence[int], params: SamplingParams
    ) -> AsyncIterator[GenerationChunk]:
        script = self.scripts[min(len(self.requests), len(self.scripts) - 1)]
        self.requests.append((model, list(prompt_ids), params))
        return Stream(self, self._replay(script, len(prompt_ids)))

    async def _replay(
        self, script: Script, prompt_tokens: int
    ) -> AsyncGenerator[GenerationChunk, None]:
        ids = self.ids(script.text + "<|im_end|>")
        chunks = [ids[start : start + script.step] for start in range(0, len(ids), script.step)]
        try:
            for chunk in chunks[:-1]:
                yield GenerationChunk(chunk, prompt_tokens=prompt_tokens)
                self.started.set()
            if script.error is not None:
                raise script.error
            if script.block:
                await asyncio.Event().wait()
            cached = prompt_tokens // 2  # as if half the prompt came from the prefix cache
            yield GenerationChunk(chunks[-1], script.finish, prompt_tokens, cached_tokens=cached)
            self.finished += 1
        except GeneratorExit:
            self.closed_early += 1
            raise
        except asyncio.CancelledError:
            self.closed_early += 1
            raise

    async def is_ready(self, model: str) -> bool:
        return model == "llm"

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def qwen() -> ServedModel:
    return served_model("llm")


@pytest.fixture(scope="module")
def qwen_tokenizer(qwen: ServedModel) -> Tokenizer:
    return Tokenizer.from_file(str(REPOSITORY / "llm" / "1" / "tokenizer.json"))


def _service(
    model: ServedModel, tokenizer: Tokenizer, *texts: str | Script, **kwargs: Any
) -> tuple[ChatService, FakeEngine]:
    scripts = [t if isinstance(t, Script) else Script(t) for t in texts]
    engine = FakeEngine(tokenizer, scripts)
    return ChatService(ModelRegistry([model]), engine, **kwargs), engine


async def _create(service: ChatService, body: dict[str, Any]) -> dict[str, Any]:
    """The completion as OpenAI's JSON."""
    return (await service.create(body)).to_openai()


def _body(served: ServedModel, **fields: Any) -> dict[str, Any]:
    return {"model": served.id, "messages": [QUESTION], "tools": [WEATHER, TIME], **fields}


def _calls(response: dict[str, Any], choice: int = 0) -> list[tuple[str, dict[str, Any]]]:
    calls = response["choices"][choice]["message"].get("tool_calls", [])
    for call in calls:
        assert CALL_ID.match(call["id"]) and call["type"] == "function"
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


CALL_TEXT = (
    '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "SF"}}\n</tool_call>'
)


async def test_auto_call_becomes_tool_calls_with_usage(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, CALL_TEXT)
    response = await _create(service, _body(qwen))
    (choice,) = response["choices"]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert _calls(response) == [("get_current_weather", {"location": "SF"})]
    model, prompt_ids, params = engine.requests[0]
    assert model == "llm" and params.stop_token_ids == tuple(qwen.card.stop_token_ids)
    completion = len(engine.ids(CALL_TEXT)) + 1
    assert response["usage"] == {
        "prompt_tokens": len(prompt_ids),
        "completion_tokens": completion,
        "total_tokens": len(prompt_ids) + completion,
        "prompt_tokens_details": {"cached_tokens": len(prompt_ids) // 2},
    }
    assert response["model"] == qwen.id and response["system_fingerprint"] == qwen.fingerprint
    assert response["object"] == "chat.completion" and response["id"].startswith("chatcmpl-")


async def test_bare_json_call_of_the_small_model(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, _ = _service(qwen, qwen_tokenizer, '{"name": "get_time", "arguments": {}}')
    assert _calls(await _create(service, _body(qwen))) == [("get_time", {})]


async def test_seed_second_step_answers_with_text(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    answer = "The current temperature in San Francisco, CA is 60 degrees."
    service, engine = _service(qwen, qwen_tokenizer, answer)
    call = {
        "id": "call_X0xYqdnoUonPJpQ6HEadxLHE",
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "arguments": '{"location": "San Francisco, CA"}',
        },
    }
    messages = [
        QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temperature": "60"}'},
    ]
    response = await _create(service, _body(qwen, messages=messages))
    assert response["choices"][0]["message"] == {"role": "assistant", "content": answer}
    assert response["choices"][0]["finish_reason"] == "stop"
    assert (engine.finished, engine.closed_early) == (1, 0)
    prompt = qwen.tokenizer.decode(engine.requests[0][1], skip_special_tokens=False)
    assert '<tool_response>\n{"temperature": "60"}\n</tool_response>' in prompt


async def test_required_prefill_is_part_of_the_parsed_call(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, 'get_time", "arguments": {}}\n</tool_call>')
    response = await _create(service, _body(qwen, tool_choice="required"))
    assert _calls(response) == [("get_time", {})]
    prompt = qwen.tokenizer.decode(engine.requests[0][1], skip_special_tokens=False)
    assert prompt.endswith('assistant\n<tool_call>\n{"name": "')


async def test_named_choice_only_accepts_the_named_tool(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    named = {"type": "function", "function": {"name": "get_current_weather"}}
    text = (
        '{"location": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    service, _ = _service(qwen, qwen_tokenizer, text)
    response = await _create(service, _body(qwen, tool_choice=named))
    assert _calls(response) == [("get_current_weather", {"location": "Paris"})]
    assert "get_time" in response["choices"][0]["message"]["content"]


async def test_required_without_a_call_keeps_the_text(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, _ = _service(qwen, qwen_tokenizer, "I refuse")
    response = await _create(service, _body(qwen, tool_choice="required"))
    assert response["choices"][0]["message"]["content"] == '<tool_call>\n{"name": "I refuse'
    assert response["choices"][0]["finish_reason"] == "stop"


async def test_tool_choice_none_returns_text_unparsed(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, CALL_TEXT)
    response = await _create(service, _body(qwen, tool_choice="none"))
    assert response["choices"][0]["message"] == {"role": "assistant", "content": CALL_TEXT}
    assert "<tools>" not in qwen.tokenizer.decode(engine.requests[0][1])


async def test_parallel_calls_and_parallel_false(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    second = '{"name": "get_current_weather", "arguments": {"location": "東京"}}'
    text = CALL_TEXT + f"\n<tool_call>\n{second}\n</tool_call>"
    service, _ = _service(qwen, qwen_tokenizer, text)
    question = [{"role": "user", "content": "Weather in SF and in 東京?"}]
    response = await _create(service, _body(qwen, messages=question))
    assert _calls(response) == [
        ("get_current_weather", {"location": "SF"}),
        ("get_current_weather", {"location": "東京"}),
    ]
    ids = [call["id"] for call in response["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 2
    assert '"東京"' in response["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"]
    single = await _create(service, _body(qwen, parallel_tool_calls=False))
    assert _calls(single) == [("get_current_weather", {"location": "SF"})]
    assert single["choices"][0]["message"]["content"] is None


async def test_stop_string_truncates_and_closes_the_generation(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    text = "Hello there. END and then a lot more text that should never be read " * 3
    service, engine = _service(qwen, qwen_tokenizer, text)
    response = await _create(service, _body(qwen, tools=None, stop=["END", "never"]))
    assert response["choices"][0]["message"]["content"] == "Hello there. "
    assert response["choices"][0]["finish_reason"] == "stop"
    assert (engine.aclose_calls, engine.closed_early, engine.finished) == (1, 1, 0)
    assert response["usage"]["completion_tokens"] < len(engine.ids(text))


async def test_n_choices_with_seeds(qwen: ServedModel, qwen_tokenizer: Tokenizer) -> None:
    service, engine = _service(qwen, qwen_tokenizer, "first", Script("second", finish="length"))
    response = await _create(service, _body(qwen, tools=None, n=2, seed=7, temperature=0.5))
    assert [c["index"] for c in response["choices"]] == [0, 1]
    assert {c["message"]["content"] for c in response["choices"]} == {"first", "second"}
    reasons = {c["message"]["content"]: c["finish_reason"] for c in response["choices"]}
    assert reasons == {"first": "stop", "second": "length"}
    assert sorted(p.seed or 0 for _, _, p in engine.requests) == [7, 8]
    assert (
        response["usage"]["completion_tokens"]
        == len(engine.ids("first")) + len(engine.ids("second")) + 2
    )
    assert engine.requests[0][1] == engine.requests[1][1]


async def test_default_and_requested_max_tokens(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    small = dataclasses.replace(qwen, max_context=200)
    service, engine = _service(small, qwen_tokenizer, "ok", default_max_tokens=1000)
    await _create(service, _body(small, tools=None))
    prompt_tokens = len(engine.requests[0][1])
    assert engine.requests[0][2].max_tokens == 200 - prompt_tokens
    await _create(service, _body(small, tools=None, max_completion_tokens=5))
    assert engine.requests[1][2].max_tokens == 5


@pytest.mark.parametrize(
    "fields", [{"max_tokens": 190}, {"messages": [{"role": "user", "content": "word " * 300}]}]
)
async def test_context_overflow_is_a_400(
    qwen: ServedModel, qwen_tokenizer: Tokenizer, fields: dict[str, Any]
) -> None:
    small = dataclasses.replace(qwen, max_context=200)
    service, engine = _service(small, qwen_tokenizer, "ok")
    with pytest.raises(InvalidRequest) as info:
        await _create(service, _body(small, tools=None, **fields))
    assert (info.value.param, info.value.code) == ("messages", "context_length_exceeded")
    assert "200" in info.value.message and not engine.requests


async def test_cancelling_the_caller_closes_every_generation(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(qwen, qwen_tokenizer, Script("a long answer " * 5, block=True))
    task = asyncio.create_task(service.create(_body(qwen, n=3)))
    await asyncio.wait_for(engine.started.wait(), 5)
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (len(engine.requests), engine.aclose_calls, engine.closed_early) == (3, 3, 3)
    assert engine.finished == 0


async def test_engine_error_propagates_and_closes_siblings(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    failing = Script("partial answer here", error=Overloaded("queue full"))
    service, engine = _service(qwen, qwen_tokenizer, failing, Script("x " * 20, block=True))
    with pytest.raises(Overloaded):
        await _create(service, _body(qwen, n=2))
    assert (len(engine.requests), engine.aclose_calls) == (2, 2)
    assert engine.closed_early == 1  # the blocked sibling


async def test_unknown_model_and_bad_request(qwen: ServedModel, qwen_tokenizer: Tokenizer) -> None:
    service, _ = _service(qwen, qwen_tokenizer, "ok")
    with pytest.raises(ModelNotFound) as info:
        await _create(service, _body(qwen, model="gpt-4"))
    assert (info.value.param, info.value.code) == ("model", "model_not_found")
    with pytest.raises(InvalidRequest) as info:
        await _create(service, _body(qwen, stream_options={"include_usage": True}))
    assert info.value.param == "stream_options"


async def test_models_and_readiness(qwen: ServedModel, qwen_tokenizer: Tokenizer) -> None:
    service, _ = _service(qwen, qwen_tokenizer, "ok")
    listed = service.list_models().to_openai()
    assert listed == {
        "object": "list",
        "data": [{"id": qwen.id, "object": "model", "created": qwen.created, "owned_by": "fncall"}],
    }
    assert service.get_model(qwen.id).to_openai() == listed["data"][0]
    with pytest.raises(NotFound):
        service.get_model("nope")
    assert await service.ready()
    other = dataclasses.replace(qwen, id="other", triton_model="down")
    down = ChatService(ModelRegistry([qwen, other]), FakeEngine(qwen_tokenizer, []))
    assert not await down.ready()


async def test_the_engine_gets_the_grammar_and_the_prefill_length(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    service, engine = _service(
        qwen, qwen_tokenizer, 'get_time", "arguments": {}}\n</tool_call>', "It is noon."
    )
    await _create(service, _body(qwen, tool_choice="required"))
    _, prompt_ids, params = engine.requests[0]
    assert params.grammar is not None and '\\"get_time\\"' in params.grammar
    prefill_ids = prompt_ids[-params.grammar_prefill_tokens :]
    assert qwen.tokenizer.decode(prefill_ids, skip_special_tokens=False) == (
        '<tool_call>\n{"name": "'
    )
    await _create(service, _body(qwen, tool_choice="none"))
    assert engine.requests[1][2].grammar is None


async def test_an_answer_cut_inside_a_later_call_is_its_checked_calls(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    """The grammar asks for a call after each one (``grammar.more``); a budget that runs out
    inside that call leaves the calls before it, a whole answer of calls."""
    text = CALL_TEXT + '\n<tool_call>\n{"name": "get_time", "argu'
    service, _ = _service(qwen, qwen_tokenizer, Script(text, finish="length"))
    response = await _create(service, _body(qwen))
    assert response["choices"][0]["finish_reason"] == "tool_calls"
    assert _calls(response) == [("get_current_weather", {"location": "SF"})]
    assert response["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize("tail", ["\n\n```", '\n\n```json\n{\n  "name": "get_time",\n  "arg'])
async def test_a_fenced_answer_cut_inside_its_next_block_is_its_checked_calls(
    qwen: ServedModel, qwen_tokenizer: Tokenizer, tail: str
) -> None:
    """Fenced calls go on the same way (``grammar._Writer.fenced``); the next block's opening
    and its lines are not content."""
    call = {"name": "get_current_weather", "arguments": {"location": "SF"}}
    text = f"```json\n{json.dumps(call, indent=2)}\n```" + tail
    service, _ = _service(qwen, qwen_tokenizer, Script(text, finish="length"))
    response = await _create(service, _body(qwen))
    assert response["choices"][0]["finish_reason"] == "tool_calls"
    assert _calls(response) == [("get_current_weather", {"location": "SF"})]
    assert response["choices"][0]["message"]["content"] is None


async def test_an_answer_cut_inside_its_first_fenced_call_reports_length(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    text = '```json\n{\n  "name": "get_current_weather",\n  "arguments": {\n    "loc'
    service, _ = _service(qwen, qwen_tokenizer, Script(text, finish="length"))
    response = await _create(service, _body(qwen))
    (choice,) = response["choices"]
    assert choice["finish_reason"] == "length" and _calls(response) == []
    assert choice["message"]["content"] == text


async def test_a_cut_off_answer_reports_length_even_with_calls(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    """Without a call asked for after each one (``parallel_tool_calls`` false), a cut
    answer says so."""
    text = CALL_TEXT + '\n<tool_call>\n{"name": "get_time", "argu'
    service, _ = _service(qwen, qwen_tokenizer, Script(text, finish="length"))
    response = await _create(service, _body(qwen, parallel_tool_calls=False))
    assert response["choices"][0]["finish_reason"] == "length"
    assert _calls(response) == [("get_current_weather", {"location": "SF"})]


async def test_calls_outside_their_schema_stay_content(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    """A fenced call (a form no grammar constrains) with arguments its schema rejects."""
    text = '```json\n{"name": "get_current_weather", "arguments": {"city": "SF"}}\n```'
    service, _ = _service(qwen, qwen_tokenizer, text)
    response = await _create(service, _body(qwen))
    (choice,) = response["choices"]
    assert _calls(response) == [] and choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == text


SEED_CALL = {
    "id": "call_X0xYqdnoUonPJpQ6HEadxLHE",
    "type": "function",
    "function": {"name": "get_current_weather", "arguments": '{"location": "San Francisco, CA"}'},
}
SEED_HISTORY = [
    QUESTION,
    {"role": "assistant", "content": None, "tool_calls": [SEED_CALL]},
    {"role": "tool", "tool_call_id": SEED_CALL["id"], "content": '{"temperature": "60"}'},
]
SEED_REPEAT = '{"name": "get_current_weather", "arguments": {"location": "San Francisco, CA"}}'


async def test_repeating_an_answered_call_is_decoded_again_without_tools(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    answer = "It is 60 degrees in San Francisco."
    service, engine = _service(qwen, qwen_tokenizer, SEED_REPEAT, answer)
    response = await _create(service, _body(qwen, messages=SEED_HISTORY))
    choice = response["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": answer}
    assert choice["finish_reason"] == "stop"
    assert len(engine.requests) == 2
    second_prompt = qwen.tokenizer.decode(engine.requests[1][1], skip_special_tokens=False)
    assert "<tools>" not in second_prompt and "returned:" in second_prompt  # calls off, prose
    assert engine.requests[1][2].grammar is None
    spent = len(qwen_tokenizer.encode(SEED_REPEAT + "<|im_end|>").ids)
    assert response["usage"]["completion_tokens"] > spent  # both decodes are counted


async def test_a_new_call_next_to_an_answered_one_is_kept_alone(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    text = f"<tool_call>\n{SEED_REPEAT}\n</tool_call>\n<tool_call>\n" + (
        '{"name": "get_time", "arguments": {}}\n</tool_call>'
    )
    service, engine = _service(qwen, qwen_tokenizer, text)
    response = await _create(service, _body(qwen, messages=SEED_HISTORY))
    assert _calls(response) == [("get_time", {})]
    assert response["choices"][0]["finish_reason"] == "tool_calls"
    assert len(engine.requests) == 1


async def test_required_keeps_an_answered_call(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    rest = SEED_REPEAT.removeprefix('{"name": "')
    service, engine = _service(qwen, qwen_tokenizer, rest)
    response = await _create(service, _body(qwen, messages=SEED_HISTORY, tool_choice="required"))
    assert _calls(response) == [("get_current_weather", {"location": "San Francisco, CA"})]
    assert len(engine.requests) == 1


async def test_generation_stops_at_a_repeated_call_block(
    qwen: ServedModel, qwen_tokenizer: Tokenizer
) -> None:
    block = f"<tool_call>\n{SEED_REPEAT}\n</tool_call>"
    service, engine = _service(qwen, qwen_tokenizer, Script("\n".join([block] * 6), "length"))
    response = await _create(service, _body(qwen))
    choice = response["choices"][0]
    assert _calls(response) == [("get_current_weather", {"location": "San Francisco, CA"})]
    assert (choice["message"]["content"], choice["finish_reason"]) == (None, "tool_calls")
    assert engine.closed_early == 1
