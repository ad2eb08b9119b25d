"""The REST shim: routes, OpenAI error envelopes, auth, request ids, draining."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from service.api.rest import create_app
from service.auth import ApiKeys
from service.errors import InvalidRequest, Overloaded, Unavailable
from service.lifecycle import Draining
from tests.unit.api.fake_chat import CHUNKS, COMPLETION, FakeChat


def _client(  # type: ignore[no-untyped-def]
    chat: FakeChat,
    keys: tuple[str, ...] = (),
    draining: Draining | None = None,
    limit: int = 1024,
):
    app = create_app(
        chat,  # type: ignore[arg-type]
        ApiKeys(keys),
        max_request_bytes=limit,
        draining=draining or Draining(),
    )
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
        base_url="http://test",
    )


def _assert_envelope(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert "Traceback" not in error["message"]
    return error  # type: ignore[no-any-return]


async def test_completion_passes_the_body_through() -> None:
    chat = FakeChat()
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert response.status_code == 200
    assert response.json() == COMPLETION
    assert chat.bodies == [{"model": "m", "messages": []}]
    assert response.headers["x-request-id"]


async def test_request_id_is_echoed() -> None:
    async with _client(FakeChat()) as client:
        response = await client.get("/health", headers={"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"x" * 2000, "request_too_large"),
    ],
)
async def test_bad_bodies_are_400(content: bytes, code: str) -> None:
    async with _client(FakeChat()) as client:
        response = await client.post(
            "/v1/chat/completions", content=content, headers={"content-type": "application/json"}
        )
    assert _assert_envelope(response, 400, "invalid_request_error")["code"] == code


async def test_client_errors_keep_their_param() -> None:
    async with _client(FakeChat()) as client:
        response = await client.post("/v1/chat/completions", json={"messages": []})
    assert _assert_envelope(response, 400, "invalid_request_error")["param"] == "model"


@pytest.mark.parametrize(
    ("error", "status", "error_type"),
    [
        (Overloaded("queue full"), 429, "rate_limit_error"),
        (Unavailable("triton down"), 503, "service_unavailable_error"),
        (RuntimeError("secret internals"), 500, "server_error"),
    ],
)
async def test_server_side_errors(error: Exception, status: int, error_type: str) -> None:
    chat = FakeChat()
    chat.error = error
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    envelope = _assert_envelope(response, status, error_type)
    assert "secret internals" not in envelope["message"]


async def test_api_keys() -> None:
    async with _client(FakeChat(), keys=("k1", "k2")) as client:
        body = {"model": "m", "messages": []}
        missing = await client.post("/v1/chat/completions", json=body)
        wrong = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer nope"}
        )
        right = await client.post(
            "/v1/chat/completions", json=body, headers={"authorization": "Bearer k2"}
        )
        models = await client.get("/v1/models")
        health = await client.get("/health")
    _assert_envelope(missing, 401, "authentication_error")
    assert _assert_envelope(wrong, 401, "authentication_error")["code"] == "invalid_api_key"
    assert right.status_code == 200
    _assert_envelope(models, 401, "authentication_error")
    assert health.status_code == 200


async def test_models_routes() -> None:
    async with _client(FakeChat()) as client:
        listed = await client.get("/v1/models")
        one = await client.get("/v1/models/m")
        missing = await client.get("/v1/models/nope")
    assert [m["id"] for m in listed.json()["data"]] == ["m"]
    assert one.json()["id"] == "m"
    _assert_envelope(missing, 404, "not_found_error")


async def test_unknown_route_and_method() -> None:
    async with _client(FakeChat()) as client:
        unknown = await client.get("/v2/nothing")
        wrong_method = await client.get("/v1/chat/completions")
    _assert_envelope(unknown, 404, "not_found_error")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


async def test_ready_and_draining() -> None:
    chat = FakeChat()
    draining = Draining()
    async with _client(chat, draining=draining) as client:
        assert (await client.get("/ready")).status_code == 200
        chat.is_ready = False
        _assert_envelope(await client.get("/ready"), 503, "service_unavailable_error")
        chat.is_ready = True
        draining.active = True
        _assert_envelope(await client.get("/ready"), 503, "service_unavailable_error")
        refused = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    assert _assert_envelope(refused, 503, "service_unavailable_error")["code"] == "shutting_down"
    assert chat.bodies == []


async def test_metrics_count_requests() -> None:
    async with _client(FakeChat()) as client:
        await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
        text = (await client.get("/metrics")).text
    assert 'fncall_requests_total{face="rest",status="200"}' in text
    assert "fncall_request_duration_seconds_bucket" in text


def _sse_events(text: str) -> list[tuple[str | None, str]]:
    """``(event, data)`` of each SSE event in a body."""
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event"), fields["data"]))
    return events


STREAM_BODY = {"model": "m", "messages": [], "stream": True}


async def test_stream_is_server_sent_events_in_openai_format() -> None:
    chat = FakeChat()
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json=STREAM_BODY)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    assert response.headers["x-request-id"]
    assert response.text.endswith("data: [DONE]\n\n")
    events = _sse_events(response.text)
    assert [event for event, _ in events] == [None] * (len(CHUNKS) + 1)
    assert [json.loads(data) for _, data in events[:-1]] == CHUNKS
    assert "Héllo" in response.text  # UTF-8, not \\u escapes


async def test_stream_error_before_the_first_byte_is_a_json_envelope() -> None:
    chat = FakeChat()
    chat.error = Overloaded("queue full")
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json=STREAM_BODY)
    _assert_envelope(response, 429, "rate_limit_error")


@pytest.mark.parametrize(
    ("error", "error_type"),
    [
        (Unavailable("triton went away"), "service_unavailable_error"),
        (RuntimeError("x"), "server_error"),
    ],
)
async def test_stream_error_after_the_start_is_an_error_event(
    error: Exception, error_type: str
) -> None:
    chat = FakeChat()
    chat.error, chat.error_after = error, 2
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json=STREAM_BODY)
    assert response.status_code == 200
    events = _sse_events(response.text)
    assert [json.loads(data) for _, data in events[:2]] == CHUNKS[:2]
    event, data = events[2]
    assert event == "error" and len(events) == 3  # then the stream ends, no [DONE]
    assert json.loads(data)["error"]["type"] == error_type
    assert chat.closed == 1


async def _abandon(app: Any, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Send ``body``, wait a little, then disconnect; the messages the app sent."""
    disconnect = asyncio.Event()
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.1)
    disconnect.set()
    await asyncio.wait_for(task, 1.0)
    return sent


@pytest.mark.parametrize("stream", [False, True])
async def test_a_disconnect_cancels_the_generation(stream: bool) -> None:
    chat = FakeChat()
    chat.gate = asyncio.Event()
    if stream:  # the stream started (two chunks sent), then holds back
        chat.error_after, chat.error = 2, InvalidRequest("never raised")
    app = create_app(chat, ApiKeys(()), max_request_bytes=1024, draining=Draining())  # type: ignore[arg-type]
    before = _rest_count("499")
    sent = await _abandon(app, {**STREAM_BODY, "stream": stream})
    assert chat.cancelled == 1
    assert _rest_count("499") == before + 1
    bodies = [m for m in sent if m["type"] == "http.response.body" and m["body"]]
    assert len(bodies) == (2 if stream else 0)  # the chunks sent before it held back


def _rest_count(status: str) -> float:
    value = REGISTRY.get_sample_value("fncall_requests_total", {"face": "rest", "status": status})
    return value or 0.0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"model": "m", "seed": 1' + b"0" * 5000 + b"}", "digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
async def test_hostile_json_is_400(content: bytes, problem: str) -> None:
    async with _client(FakeChat(), limit=1 << 20) as client:
        response = await client.post("/v1/chat/completions", content=content)
    error = _assert_envelope(response, 400, "invalid_request_error")
    assert error["code"] == "invalid_json" and problem in error["message"]


async def test_any_content_type_is_read_as_json() -> None:
    async with _client(FakeChat()) as client:
        response = await client.post(
            "/v1/chat/completions",
            content=b'{"model": "m", "messages": []}',
            headers={"content-type": "text/plain"},
        )
    assert response.status_code == 200


async def test_overload_says_when_to_retry() -> None:
    chat = FakeChat()
    chat.error = Overloaded("queue full")
    async with _client(chat) as client:
        response = await client.post("/v1/chat/completions", json={"model": "m", "messages": []})
    _assert_envelope(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "1"


async def test_health_follows_liveness() -> None:
    app = create_app(
        FakeChat(),  # type: ignore[arg-type]
        ApiKeys(()),
        max_request_bytes=1024,
        draining=Draining(),
        alive=lambda: False,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/health")
    _assert_envelope(response, 503, "service_unavailable_error")
