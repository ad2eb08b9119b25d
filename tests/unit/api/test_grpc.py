"""The gRPC face over a real grpc.aio server (fake ChatService): codes, auth, health, reflection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service.api.grpc import SERVICE_NAME, GrpcServer
from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc
from service.auth import ApiKeys
from service.errors import InvalidRequest, Overloaded
from service.lifecycle import Draining
from tests.unit.api.fake_chat import FakeChat


@dataclass
class Stack:
    chat: FakeChat
    draining: Draining
    server: GrpcServer
    channel: grpc.aio.Channel

    @property
    def stub(self) -> chat_pb2_grpc.ChatCompletionsStub:
        return chat_pb2_grpc.ChatCompletionsStub(self.channel)


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    chat, draining = FakeChat(), Draining()
    server = GrpcServer(chat, ApiKeys(["secret"]), draining, max_message_bytes=64 * 1024)  # type: ignore[arg-type]
    port = server.bind("127.0.0.1", 0)
    await server.server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Stack(chat, draining, server, channel)
    finally:
        await channel.close()
        await server.server.stop(None)


AUTH = (("authorization", "Bearer secret"),)
REQUEST = chat_pb2.ChatCompletionRequest(
    model="m", messages=[chat_pb2.Message(role="user", content="hi")]
)


async def test_create(stack: Stack) -> None:
    call = stack.stub.Create(REQUEST, metadata=(*AUTH, ("x-request-id", "rid-1")))
    response = await call
    assert response.choices[0].finish_reason == chat_pb2.TOOL_CALLS
    assert response.choices[0].message.tool_calls[0].function.arguments == '{"city": "Paris"}'
    assert ("x-request-id", "rid-1") in tuple(await call.initial_metadata())
    assert stack.chat.bodies[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_client_error_is_invalid_argument_with_the_same_message(stack: Stack) -> None:
    stack.chat.error = InvalidRequest("messages must not be empty", param="messages")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Create(REQUEST, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "messages must not be empty"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (RuntimeError("secret internals"), grpc.StatusCode.INTERNAL),
    ],
)
async def test_server_errors(stack: Stack, error: Exception, code: grpc.StatusCode) -> None:
    stack.chat.error = error
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Create(REQUEST, metadata=AUTH)
    assert err.value.code() == code
    assert "secret internals" not in (err.value.details() or "")
    retry = [value for key, value in err.value.trailing_metadata() or () if key == "retry-after"]
    assert retry == (["1"] if isinstance(error, Overloaded) else [])


async def test_unauthenticated(stack: Stack) -> None:
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub.Create(REQUEST, metadata=metadata)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.ListModels(chat_pb2.ListModelsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stack.chat.bodies == []


async def test_draining_refuses_new_work(stack: Stack) -> None:
    stack.draining.active = True
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Create(REQUEST, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_deadline_cancels_the_work(stack: Stack) -> None:
    stack.chat.gate = asyncio.Event()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Create(REQUEST, metadata=AUTH, timeout=0.3)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(50):
        if stack.chat.cancelled:
            break
        await asyncio.sleep(0.02)
    assert stack.chat.cancelled == 1


async def test_client_cancel_cancels_the_work(stack: Stack) -> None:
    stack.chat.gate = asyncio.Event()
    call = stack.stub.Create(REQUEST, metadata=AUTH)
    while not stack.chat.bodies:
        await asyncio.sleep(0.01)
    call.cancel()
    for _ in range(50):
        if stack.chat.cancelled:
            break
        await asyncio.sleep(0.02)
    assert stack.chat.cancelled == 1


async def test_too_large_message_is_rejected(stack: Stack) -> None:
    big = chat_pb2.ChatCompletionRequest(
        model="m", messages=[chat_pb2.Message(role="user", content="x" * 100_000)]
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stack.stub.Create(big, metadata=AUTH)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stack.chat.bodies == []


async def test_stream_translates_the_chunks(stack: Stack) -> None:
    request = chat_pb2.ChatCompletionRequest()
    request.CopyFrom(REQUEST)
    request.stream_options.include_usage = True
    call = stack.stub.CreateStream(request, metadata=(*AUTH, ("x-request-id", "rid-2")))
    chunks = [chunk async for chunk in call]
    assert ("x-request-id", "rid-2") in tuple(await call.initial_metadata())
    assert stack.chat.bodies[0]["stream"] is True
    assert stack.chat.bodies[0]["stream_options"] == {"include_usage": True}
    role, content, head, arguments, finish, usage = chunks
    assert role.choices[0].delta.role == "assistant" and not role.choices[0].delta.HasField(
        "content"
    )
    assert content.choices[0].delta.content == "Héllo"
    call_head = head.choices[0].delta.tool_calls[0]
    assert (call_head.index, call_head.id, call_head.type) == (0, "call_x", "function")
    assert (call_head.function.name, call_head.function.arguments) == ("w", "")
    assert arguments.choices[0].delta.tool_calls[0].function.arguments == '{"city": "P"}'
    assert finish.choices[0].finish_reason == chat_pb2.TOOL_CALLS
    assert not usage.choices and usage.usage.total_tokens == 5
    assert {c.id for c in chunks} == {"chatcmpl-1"} and chunks[0].object == "chat.completion.chunk"


async def test_stream_needs_the_api_key(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stack.stub.CreateStream(REQUEST):
            pass
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert stack.chat.bodies == []


@pytest.mark.parametrize("after", [None, 2])
async def test_stream_errors_end_the_call_with_their_code(stack: Stack, after: int | None) -> None:
    stack.chat.error, stack.chat.error_after = Overloaded("queue full"), after
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stack.stub.CreateStream(REQUEST, metadata=AUTH):
            received += 1
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert received == (after or 0)


async def test_stream_cancel_and_deadline_stop_the_generation(stack: Stack) -> None:
    stack.chat.gate, stack.chat.error_after = asyncio.Event(), 2
    stack.chat.error = InvalidRequest("never raised")
    call = stack.stub.CreateStream(REQUEST, metadata=AUTH)
    assert len([await call.read(), await call.read()]) == 2
    call.cancel()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in stack.stub.CreateStream(REQUEST, metadata=AUTH, timeout=0.3):
            pass
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    for _ in range(50):
        if stack.chat.cancelled == 2:
            break
        await asyncio.sleep(0.02)
    assert (stack.chat.cancelled, stack.chat.closed) == (2, 2)


async def test_list_models(stack: Stack) -> None:
    response = await stack.stub.ListModels(chat_pb2.ListModelsRequest(), metadata=AUTH)
    assert [m.id for m in response.data] == ["m"]


async def test_health_follows_readiness(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel)
    await stack.server.set_serving(True)
    for name in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stack.chat.is_ready = False
    watcher = asyncio.create_task(stack.server.watch_readiness(stack.draining, period_s=0.05))
    await asyncio.sleep(0.2)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    watcher.cancel()
    assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_reflection_lists_the_services(stack: Stack) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(stack.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names = {s.name for s in reply.list_services_response.service}
        break
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize(
    "payload",
    [
        REQUEST.SerializeToString()[:-3],  # truncated
        b"\x0a\x02\xff\xfe",  # field 1 (model): invalid UTF-8
        b"\x12" * 200,  # a message nested past protobuf's limit
    ],
)
@pytest.mark.parametrize("method", ["Create", "CreateStream"])
async def test_undecodable_requests_are_invalid_argument(
    stack: Stack, payload: bytes, method: str
) -> None:
    raw = stack.channel.unary_unary if method == "Create" else stack.channel.unary_stream
    call = raw(f"/{SERVICE_NAME}/{method}")(payload, metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        if method == "Create":
            await call
        else:
            async for _ in call:  # type: ignore[attr-defined]
                pass
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stack.chat.bodies == []
