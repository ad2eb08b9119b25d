"""The gRPC face (``fncall.v1.ChatCompletions``) with standard health checking and reflection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.api.admission import GrpcAdmission
from service.api.grpc_convert import (
    chunk_to_proto,
    completion_to_proto,
    models_to_proto,
    request_to_openai,
)
from service.api.grpc_decode import UndecodableRequests
from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc
from service.auth import ApiKeys
from service.chat_types import ChatBackend
from service.lifecycle import Draining

logger = logging.getLogger(__name__)

SERVICE_NAME = chat_pb2.DESCRIPTOR.services_by_name["ChatCompletions"].full_name


class ChatCompletionsServicer(chat_pb2_grpc.ChatCompletionsServicer):
    """Translates protobuf to ``ChatService`` calls and back; holds no logic of its own.
    Admission (request id, API key, draining, metrics, error status) is ``GrpcAdmission``."""

    def __init__(self, chat: ChatBackend) -> None:
        self._chat = chat

    async def Create(
        self, request: chat_pb2.ChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ChatCompletion:
        return completion_to_proto(await self._chat.create(request_to_openai(request)))

    async def CreateStream(
        self, request: chat_pb2.ChatCompletionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chat_pb2.ChatCompletionChunk]:
        chunks = await self._chat.stream({**request_to_openai(request), "stream": True})
        try:
            async for chunk in chunks:
                yield chunk_to_proto(chunk)
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    async def ListModels(
        self, request: chat_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> chat_pb2.ListModelsResponse:
        return models_to_proto(self._chat.list_models())


class GrpcServer:
    """The async gRPC server: our service, ``grpc.health.v1`` and server reflection."""

    def __init__(
        self,
        chat: ChatBackend,
        api_keys: ApiKeys,
        draining: Draining,
        *,
        max_message_bytes: int,
    ) -> None:
        self.server = grpc.aio.server(
            interceptors=[GrpcAdmission(SERVICE_NAME, api_keys, draining), UndecodableRequests()],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._chat = chat
        self.health = health.aio.HealthServicer()
        chat_pb2_grpc.add_ChatCompletionsServicer_to_server(
            ChatCompletionsServicer(chat), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )

    def bind(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = any free port); returns the bound port."""
        bound = self.server.add_insecure_port(f"{host}:{port}")
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        return bound

    async def set_serving(self, serving: bool) -> None:
        """Report SERVING (Triton and models ready) or NOT_SERVING on every health name."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def watch_readiness(self, draining: Draining, period_s: float = 2.0) -> None:
        """Keep the health status in step with ``ChatService.ready`` until cancelled."""
        while True:
            await self.set_serving(not draining.active and await self._chat.ready())
            await asyncio.sleep(period_s)
