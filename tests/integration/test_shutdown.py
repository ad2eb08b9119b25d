"""SIGTERM with requests in flight: they complete, new ones are refused, the process exits 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import SMOLLM, SMOLLM_TRITON_NAME
from tests.integration.serving import in_flight, running_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG_ANSWER = {
    "model": SMOLLM,
    "messages": [{"role": "user", "content": "Count from 1 to 200, one number per line."}],
    "max_tokens": 96,
    "temperature": 0,
}


async def test_sigterm_drains_in_flight_requests(smollm_repository: Path, tmp_path: Path) -> None:
    with running_service(smollm_repository, [SMOLLM_TRITON_NAME], tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
            requests = [
                asyncio.create_task(client.post("/v1/chat/completions", json=LONG_ANSWER))
                for _ in range(3)
            ]
            deadline = time.monotonic() + 30
            while await asyncio.to_thread(in_flight, service.url) < 3:
                assert time.monotonic() < deadline, "requests never got in flight"
                await asyncio.sleep(0.05)
            exit_status = asyncio.create_task(asyncio.to_thread(service.terminate))
            await asyncio.sleep(0.5)
            with pytest.raises(httpx.TransportError):
                async with httpx.AsyncClient(base_url=service.url, timeout=5) as fresh:
                    await fresh.post("/v1/chat/completions", json=LONG_ANSWER)
            responses = await asyncio.gather(*requests)
            assert await exit_status == 0, service.log_tail()
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["usage"]["completion_tokens"] > 0
        assert body["choices"][0]["message"]["content"]
    assert "draining in-flight requests" in service.log_tail(20000)
