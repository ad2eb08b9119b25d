"""The Responses routes of the REST shim: envelopes, auth, draining, body limits, GET by id."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from service.api.rest import create_app
from service.auth import ApiKeys
from service.errors import Overloaded
from service.lifecycle import Draining
from service.responses.store import ResponseStore
from tests.unit.api.fake_chat import FakeChat
from tests.unit.responses.fakes import ScriptedChat, chat_chunk

BODY = {"model": "m", "input": "What is the weather in Paris?"}


def _client(
    chat: FakeChat,
    keys: tuple[str, ...] = (),
    draining: Draining | None = None,
    store: ResponseStore | None = None,
) -> httpx.AsyncClient:
    app = create_app(
        chat,  # type: ignore[arg-type]
        ApiKeys(keys),
        max_request_bytes=1024,
        draining=draining or Draining(),
        responses_store=store,
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    )


def _error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == error_type
    return error  # type: ignore[no-any-return]


async def test_create_then_get() -> None:
    chat = FakeChat()
    async with _client(chat) as client:
        created = await client.post("/v1/responses", json=BODY)
        fetched = await client.get(f"/v1/responses/{created.json()['id']}")
        missing = await client.get("/v1/responses/resp_nope")
    assert created.status_code == 200 and created.headers["x-request-id"]
    assert created.json()["output"][0]["call_id"] == "call_x"
    assert chat.bodies == [{"model": "m", "messages": [{"role": "user", "content": BODY["input"]}]}]
    assert fetched.json() == created.json()
    assert _error(missing, 404, "not_found_error")["code"] == "response_not_found"


async def test_store_size_zero_keeps_nothing() -> None:
    async with _client(FakeChat(), store=ResponseStore(size=0)) as client:
        created = await client.post("/v1/responses", json=BODY)
        follow_up = {**BODY, "previous_response_id": created.json()["id"]}
        refused = await client.post("/v1/responses", json=follow_up)
    error = _error(refused, 400, "invalid_request_error")
    assert (error["param"], error["code"]) == (
        "previous_response_id",
        "previous_response_not_found",
    )


@pytest.mark.parametrize(
    ("content", "code"), [(b"{not json", "invalid_json"), (b"x" * 2000, "request_too_large")]
)
async def test_bad_bodies_are_400(content: bytes, code: str) -> None:
    async with _client(FakeChat()) as client:
        response = await client.post(
            "/v1/responses", content=content, headers={"content-type": "application/json"}
        )
    assert _error(response, 400, "invalid_request_error")["code"] == code


async def test_api_keys_guard_both_routes() -> None:
    async with _client(FakeChat(), keys=("k1",)) as client:
        missing = await client.post("/v1/responses", json=BODY)
        wrong = await client.get("/v1/responses/x", headers={"authorization": "Bearer no"})
        right = await client.post(
            "/v1/responses", json=BODY, headers={"authorization": "Bearer k1"}
        )
    assert _error(missing, 401, "authentication_error")["code"] == "missing_api_key"
    assert _error(wrong, 401, "authentication_error")["code"] == "invalid_api_key"
    assert right.status_code == 200


async def test_draining_refuses_and_errors_are_counted() -> None:
    chat = FakeChat()
    draining = Draining()
    async with _client(chat, draining=draining) as client:
        chat.error = Overloaded("queue full")
        overloaded = await client.post("/v1/responses", json=BODY)
        draining.active = True
        refused = await client.post("/v1/responses", json=BODY)
        metrics = (await client.get("/metrics")).text
    _error(overloaded, 429, "rate_limit_error")
    assert _error(refused, 503, "service_unavailable_error")["code"] == "shutting_down"
    assert len(chat.bodies) == 1
    assert 'fncall_requests_total{face="rest",status="429"}' in metrics


async def test_server_bugs_are_500_without_internals() -> None:
    chat = FakeChat()
    chat.error = RuntimeError("secret internals")
    async with _client(chat) as client:
        response = await client.post("/v1/responses", json=BODY)
    assert "secret internals" not in _error(response, 500, "server_error")["message"]


async def test_streamed_events_read_by_the_openai_sdk() -> None:
    """The SSE wire format as the SDK parses it: typed events, then the final response."""
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "w"}}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": "Checking "},
        {"content": "now."},
        {"tool_calls": [{**call, "function": {"name": "w", "arguments": '{"city": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
    ]
    chunks = [chat_chunk(delta) for delta in deltas] + [chat_chunk({}, "tool_calls")]
    app = create_app(
        ScriptedChat(chunks=chunks),  # type: ignore[arg-type]
        ApiKeys(()),
        max_request_bytes=1024,
        draining=Draining(),
    )
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/v1")
    async with openai.AsyncOpenAI(base_url="http://test/v1", api_key="k", http_client=http) as sdk:
        stream = await sdk.responses.create(model="m", input="Weather in Paris?", stream=True)
        types = [event.type async for event in stream]
        async with sdk.responses.stream(model="m", input="Weather in Paris?") as helper:
            final = await helper.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert types.count("response.output_text.delta") == 2
    assert types.count("response.function_call_arguments.delta") == 2
    assert final.output_text == "Checking now."
    assert final.output[1].type == "function_call"
    assert final.output[1].arguments == '{"city": "Paris"}'
