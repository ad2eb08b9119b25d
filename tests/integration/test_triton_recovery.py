"""A killed Triton heals: 503 while it is down, /health stays live, the supervisor restarts it,
answers are right again, and no process of the dead Triton is left behind."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import SMOLLM, SMOLLM_TRITON_NAME
from tests.integration.serving import ServiceProcess, is_live, is_ready, running_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECOVERY_S = 120.0
BODY = {
    "model": SMOLLM,
    "messages": [{"role": "user", "content": "Count from 1 to 5."}],
    "max_tokens": 8,
    "temperature": 0,
}


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _triton_pid(service: ServiceProcess) -> int:
    for pid in _pids():
        fields = _stat(pid)
        if fields and int(fields[1]) == service.process.pid:  # ppid
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            if comm == "tritonserver":
                return pid
    raise AssertionError("no tritonserver child of the service")


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for pid in _pids():
        fields = _stat(pid)
        if fields and int(fields[2]) == pgid and fields[0] != "Z":
            found.append(pid)
    return found


def _complete(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/chat/completions", json=BODY, timeout=120)


def _wait(condition, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout_s, "timed out"
        time.sleep(0.25)
    return time.monotonic() - start


def test_killed_triton_is_restarted_under_load(smollm_repository: Path, tmp_path: Path) -> None:
    with (
        running_service(smollm_repository, [SMOLLM_TRITON_NAME], tmp_path) as service,
        httpx.Client(base_url=service.url) as client,
    ):
        expected = _complete(client)
        assert expected.status_code == 200
        answer = expected.json()["choices"][0]["message"]["content"]
        for _round in range(2):
            triton = _triton_pid(service)
            assert len(_group(triton)) >= 2  # the server and its Python-backend stub
            with ThreadPoolExecutor(4) as pool:
                load = [pool.submit(_complete, client) for _ in range(6)]
                time.sleep(0.5)
                os.kill(triton, signal.SIGKILL)
                statuses = [future.result().status_code for future in load]
            assert set(statuses) <= {200, 503}, statuses
            failed = _complete(client)
            assert failed.status_code in (200, 503)  # 200 only if it already came back
            if failed.status_code == 503:
                message = failed.json()["error"]["message"]
                assert "127.0.0.1" not in message
                assert not is_ready(service.url)
            assert is_live(service.url)
            _wait(lambda: is_ready(service.url), RECOVERY_S)
            assert _group(triton) == []  # the dead server's stub went with it
            again = _complete(client)
            assert again.status_code == 200
            assert again.json()["choices"][0]["message"]["content"] == answer
        assert "restarting it" in service.log_tail(200_000)
        last = _triton_pid(service)
    assert service.process.returncode == 0
    assert _group(last) == []
