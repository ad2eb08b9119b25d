"""Launcher helpers that need no running server."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path

import pytest

from service.launcher import (
    TritonLauncher,
    TritonLaunchError,
    _line_level,
    _prepare_backends,
    free_port,
)


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ('I1125 02:56:53.813593 11754 grpc_server.cc:2558] "Started"', logging.INFO),
        ('W1125 02:56:53.8 1 model.cc:1] "slow"', logging.WARNING),
        ('E1125 02:56:53.8 1 server.cc:1] "failed"', logging.ERROR),
        ('E1125 02:57:27.5 1 server.cc:241] "CudaDriverHelper has not been initialized."', 10),
        ("ERROR service.runtime.scheduler: decode step failed", logging.ERROR),
        ("Traceback (most recent call last):", logging.INFO),
    ],
)
def test_log_lines_keep_their_level(line: str, level: int) -> None:
    assert _line_level(line) == level


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_backend_directory_carries_the_stub_for_this_python(tmp_path: Path) -> None:
    dist = tmp_path / "tritonserver"
    (dist / "backends" / "python").mkdir(parents=True)
    (dist / "backends" / "python" / "libtriton_python.so").write_bytes(b"so")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub_dir = dist / "python_backend_stubs" / version
    stub_dir.mkdir(parents=True)
    (stub_dir / "triton_python_backend_stub").write_bytes(b"stub")
    backends = _prepare_backends(dist, tmp_path / "work")
    assert (backends / "python" / "triton_python_backend_stub").read_bytes() == b"stub"
    assert (backends / "python" / "libtriton_python.so").is_file()


def test_launcher_urls_use_loopback_and_given_ports(tmp_path: Path) -> None:
    launcher = TritonLauncher(tmp_path, ["m"], grpc_port=12345, http_port=12346)
    assert launcher.grpc_url == "127.0.0.1:12345"
    assert launcher.http_url == "http://127.0.0.1:12346"
    with pytest.raises(ValueError):
        TritonLauncher(tmp_path, ["m"], log_level="loud")


def test_an_installed_tritonserver_uses_its_own_backends(tmp_path: Path) -> None:
    launcher = TritonLauncher(tmp_path, ["llm"], tritonserver=tmp_path / "bin" / "tritonserver")
    assert not any(a.startswith("--backend-directory") for a in launcher._arguments(None))
    with pytest.raises(TritonLaunchError, match="does not exist"):
        launcher.start(timeout_s=1)
    assert not launcher.running
