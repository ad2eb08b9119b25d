"""A server fault answers 500 and keeps the keep-alive connection usable (real uvicorn)."""

from __future__ import annotations

import asyncio
import json

import uvicorn

from service.api.rest import create_app
from service.auth import ApiKeys
from service.launcher import free_port
from service.lifecycle import Draining
from tests.unit.api.fake_chat import FakeChat

_REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b'Content-Length: 14\r\n\r\n{"model": "m"}'
)


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    assert headers.get("connection") != "close"
    body = await reader.readexactly(int(headers["content-length"]))
    return int(lines[0].split()[1]), body


async def test_a_500_leaves_the_connection_open() -> None:
    chat = FakeChat()
    chat.error = RuntimeError("a server bug")
    app = create_app(chat, ApiKeys(()), max_request_bytes=1024, draining=Draining())  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(_REQUEST)
            status, body = await _response(reader)
            assert status == 500
            assert json.loads(body)["error"]["type"] == "server_error"
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await task
