"""The Responses API (``POST /v1/responses``) through the real ``openai`` SDK on the shared stack.

The seed's weather flow as the Responses docs write it (a ``function_call`` item, the client's
``function_call_output``, then text), ``previous_response_id``, and the error taxonomy shared
with ``/v1/chat/completions``. Tool-calling requests decode greedily.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.integration.conftest import QWEN, openai_client
from tests.integration.serving import ServiceProcess
from tests.seed import QUESTION, WEATHER_TOOL, get_current_weather

pytestmark = pytest.mark.integration

# The Responses API's flat function tool: no nested "function" object.
TOOLS: Any = [{"type": "function", **WEATHER_TOOL["function"]}]
GREEDY: dict[str, Any] = {"temperature": 0.0, "max_output_tokens": 128}


def _weather_call(response: Any) -> Any:
    assert response.status == "completed", response
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1, response.output
    (call,) = calls
    assert call.name == "get_current_weather" and call.call_id.startswith("call_")
    assert call.id.startswith("fc_") and call.status == "completed"
    assert "san francisco" in json.loads(call.arguments)["location"].lower()
    return call


def _call_output(call: Any) -> dict[str, Any]:
    result = get_current_weather(location=json.loads(call.arguments)["location"])
    return {"type": "function_call_output", "call_id": call.call_id, "output": result}


def test_seed_weather_flow(client: openai.OpenAI) -> None:
    """The Responses docs' function-calling loop: call, run it, send the output, read text."""
    items: list[Any] = [QUESTION]
    response = client.responses.create(model=QWEN, input=items, tools=TOOLS, **GREEDY)
    assert response.id.startswith("resp_") and response.object == "response"
    call = _weather_call(response)
    assert response.usage is not None and response.usage.input_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens

    items += response.output  # the SDK's own item objects go back as input
    items.append(_call_output(call))
    # As in the seed, the follow-up sends the results without tools.
    answer = client.responses.create(model=QWEN, input=items, **GREEDY)
    assert answer.status == "completed" and answer.incomplete_details is None
    assert [item.type for item in answer.output] == ["message"]
    assert "60" in answer.output_text
    assert not answer.output_text.lstrip().startswith(("{", "<tool_call>"))


def test_previous_response_id_carries_the_conversation(client: openai.OpenAI) -> None:
    """The follow-up sends only the call's output; the server holds the rest."""
    first = client.responses.create(
        model=QWEN,
        instructions="You are a helpful assistant.",
        input=[QUESTION],
        tools=TOOLS,
        **GREEDY,
    )
    call = _weather_call(first)
    assert client.responses.retrieve(first.id).id == first.id
    answer = client.responses.create(
        model=QWEN, previous_response_id=first.id, input=[_call_output(call)], **GREEDY
    )
    assert answer.previous_response_id == first.id
    assert "60" in answer.output_text


def test_streamed_seed_flow_matches_the_non_streamed_one(client: openai.OpenAI) -> None:
    """``stream=True``: the Responses events, and the same answers as without streaming."""
    items: list[Any] = [QUESTION]
    plain = client.responses.create(model=QWEN, input=items, tools=TOOLS, **GREEDY)
    stream = client.responses.create(model=QWEN, input=items, tools=TOOLS, stream=True, **GREEDY)
    events = list(stream)
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "response.function_call_arguments.delta" in types
    assert "response.function_call_arguments.done" in types
    streamed = events[-1].response  # type: ignore[union-attr]
    call = _weather_call(streamed)
    assert (call.name, call.arguments) == (
        _weather_call(plain).name,
        _weather_call(plain).arguments,
    )
    assert streamed.usage is not None and plain.usage is not None
    assert streamed.usage.output_tokens == plain.usage.output_tokens

    items += streamed.output
    items.append(_call_output(call))
    with client.responses.stream(model=QWEN, input=items, **GREEDY) as text_stream:
        deltas = [e.delta for e in text_stream if e.type == "response.output_text.delta"]
        answer = text_stream.get_final_response()
    assert len(deltas) > 1 and "".join(deltas) == answer.output_text
    assert "60" in answer.output_text
    # A streamed response is stored like any other.
    assert client.responses.retrieve(answer.id).output_text == answer.output_text


def test_stream_errors_before_the_first_event_are_envelopes(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model=QWEN,
            input="hi",
            stream=True,
            tools=[{"type": "web_search"}],  # type: ignore[list-item]
        )
    assert caught.value.param == "tools[0].type"


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input="hi")
    assert caught.value.status_code == 404 and caught.value.type == "invalid_request_error"
    assert (caught.value.param, caught.value.code) == ("model", "model_not_found")


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    first = client.responses.create(model=QWEN, input="Say hi.", store=False, max_output_tokens=8)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=QWEN, input="Again.", previous_response_id=first.id)
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_cut_off_answer_is_incomplete(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model=QWEN, input="Write a long story about a lighthouse.", max_output_tokens=4
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 4


def test_json_schema_text_format(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=QWEN,
        input="Name the capital of France as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": schema}},
        **GREEDY,
    )
    assert set(json.loads(response.output_text)) == {"city"}


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"temperature": 3}, "temperature", None),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "unsupported_value"),
        ({"tools": [{"type": "function", "name": "bad name!"}]}, "tools[0].name", None),
        ({"tool_choice": "required"}, "tool_choice", None),
        ({"reasoning": {"effort": "high"}}, "reasoning", "unsupported_parameter"),
        (
            {"input": [{"type": "function_call_output", "call_id": "x", "output": "1"}]},
            "input[0].call_id",
            None,
        ),
        ({"input": "word " * 40000}, "input", "context_length_exceeded"),
    ],
)
def test_bad_requests_share_the_chat_taxonomy(
    client: openai.OpenAI, fields: dict[str, Any], param: str, code: str | None
) -> None:
    body = {"model": QWEN, "input": "hi", **fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(**body)
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert (error.param, error.code) == (param, code)
    assert error.response.json()["error"]["message"]


def test_wrong_api_key_is_401(qwen_service: ServiceProcess) -> None:
    with (
        openai_client(qwen_service, api_key="wrong") as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.responses.create(model=QWEN, input="hi")
