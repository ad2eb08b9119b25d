"""Run ``fncall serve`` as a user would: a subprocess on free ports, ready when /ready is 200."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.launcher import REPO_ROOT, free_port

START_TIMEOUT_S = 420.0
_IN_FLIGHT = re.compile(r"^fncall_requests_in_flight (\S+)$", re.MULTILINE)


@dataclass
class ServiceProcess:
    """A running ``fncall serve``: its addresses, log and process."""

    process: subprocess.Popen[bytes]
    url: str
    grpc_target: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def terminate(self, timeout_s: float = 120.0) -> int:
        """SIGTERM, then wait for the exit status (kill after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def in_flight(url: str) -> float:
    """The service's ``fncall_requests_in_flight`` gauge, read from ``/metrics``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        match = _IN_FLIGHT.search(response.read().decode())
    return float(match.group(1)) if match else 0.0


def is_ready(url: str) -> bool:
    return _answers_200(f"{url}/ready")


def is_live(url: str) -> bool:
    return _answers_200(f"{url}/health")


@contextmanager
def running_service(
    repository: Path,
    models: Sequence[str],
    workdir: Path,
    extra_args: Sequence[str] = (),
    *,
    wait_ready: bool = True,
) -> Iterator[ServiceProcess]:
    """Start ``fncall serve --no-build`` over ``repository``; stop it on exit. Without
    ``wait_ready``, only wait until the REST port answers /health."""
    port, grpc_port = free_port(), free_port()
    command = [sys.executable, "-m", "service.cli", "serve", "--no-build", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--grpc-port", str(grpc_port)]
    command += ["--repository", str(repository), *(f"--model={m}" for m in models), *extra_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FNCALL_")}
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink)
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        check = is_ready if wait_ready else is_live
        while not check(service.url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fncall serve did not become ready:\n{service.log_tail()}")
            time.sleep(0.5)
        yield service
    finally:
        if process.poll() is None:
            service.terminate()
