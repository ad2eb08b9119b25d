"""Embedded mode: run the ``tritonserver`` binary of the nvidia-pytriton wheel on free local ports.

The wheel ships the server, the Python backend and one backend stub per Python version. Like
pytriton's own launcher, we assemble a backend directory holding the stub for *this* Python,
point ``LD_LIBRARY_PATH`` at the wheel's bundled libraries, and hand our interpreter's packages
and the repository root to the stub through ``PYTHONPATH`` so model code can import ``service``.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
_LOG_TAIL_LINES = 60
# Triton dies with us (SIGTERM when this process goes, even by SIGKILL): a tiny exec wrapper sets
# Linux's parent-death signal, which survives exec. (Not a preexec_fn: Python code between fork
# and exec in a process running gRPC threads aborts the child.)
_DIE_WITH_PARENT = [
    sys.executable,
    "-c",
    "import ctypes, os, signal, sys\n"
    "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "except (OSError, AttributeError):\n    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n    sys.exit(1)  # the parent died before prctl\n"
    "os.execv(sys.argv[2], sys.argv[2:])",
]
EXIT_TIMEOUT_S = 5
_TRITON_LEVEL = re.compile(r"^([IWE])\d{4} ")
_PYTHON_LEVEL = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR}
# Lines Triton prints on machines without a GPU driver: harmless, logged at DEBUG.
_NO_GPU_NOISE = ("CUDA driver", "CudaDriverHelper", "pinned memory", "NVML", "DCGM")


class TritonLaunchError(RuntimeError):
    """Triton could not be started, or exited before its models were ready."""


class TritonLauncher:
    """Start and stop one ``tritonserver`` that loads only ``models`` from ``repository``."""

    def __init__(
        self,
        repository: Path,
        models: list[str],
        *,
        log_level: str = "warning",
        grpc_port: int | None = None,
        http_port: int | None = None,
        tritonserver: Path | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.models = list(models)
        self.log_level = logging.getLevelName(log_level.upper())
        if not isinstance(self.log_level, int):
            raise ValueError(f"unknown log level {log_level!r}")
        # None: the nvidia-pytriton wheel's server; else an installed one (e.g. the NGC image's
        # /opt/tritonserver/bin/tritonserver) with its own backends.
        self.tritonserver = Path(tritonserver) if tritonserver else None
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self._process: subprocess.Popen[str] | None = None
        self._abort = threading.Event()
        self._workdir: Path | None = None
        self._reader: threading.Thread | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=_LOG_TAIL_LINES)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout_s: float = 120.0) -> None:
        """Launch Triton and block until every listed model is ready."""
        if self._process is not None:
            raise TritonLaunchError("this launcher is already running")
        self._abort.clear()
        dist: Path | None = None
        if self.tritonserver is None:
            dist = triton_dist_dir()
            binary = dist / "bin" / "tritonserver"
        else:
            binary = self.tritonserver
            if not binary.is_file():
                raise TritonLaunchError(f"the tritonserver binary {binary} does not exist")
        self._workdir = Path(tempfile.mkdtemp(prefix="fncall-triton-"))
        backends = _prepare_backends(dist, self._workdir) if dist is not None else None
        command = [str(binary), *self._arguments(backends)]
        logger.info("starting Triton: %s", " ".join(command))
        command = [*_DIE_WITH_PARENT, str(os.getpid()), *command]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_environment(dist),
            text=True,
            errors="replace",
            # Its own process group, so its backend stubs can be killed with it.
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_log, name="triton-log", daemon=True)
        self._reader.start()
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        logger.info("Triton ready on %s with %s", self.grpc_url, ", ".join(self.models))

    def abort(self) -> None:
        """Make a ``start`` in progress (another thread) give up at once."""
        self._abort.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout_s``, then kill; kill what is left of its process group
        (backend stubs of a Triton that died); remove the work directory."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("Triton did not stop in %.0f s; killing it", timeout_s)
                process.kill()
                process.wait()
        if process is not None:
            _kill_group(process.pid)
        if self._reader is not None:
            self._reader.join(5.0)
            self._reader = None
        if process is not None and process.stdout is not None:
            process.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of a Triton that exited (None while it runs or before a start)."""
        return None if self._process is None else self._process.poll()

    def log_tail(self) -> str:
        """The last lines Triton printed."""
        return "\n".join(self._tail)

    def __enter__(self) -> TritonLauncher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------

    def _arguments(self, backends: Path | None) -> list[str]:
        verbose = self.log_level <= logging.DEBUG
        return [
            f"--model-repository={self.repository}",
            "--model-control-mode=explicit",
            *(f"--load-model={model}" for model in self.models),
            *([f"--backend-directory={backends}"] if backends is not None else []),
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http_port}",
            "--allow-metrics=false",
            "--allow-gpu-metrics=false",
            f"--log-info={str(self.log_level <= logging.INFO).lower()}",
            f"--log-verbose={1 if verbose else 0}",
            # Triton 2.51 can keep a model pinned by a cancelled gRPC-stream request: bound the
            # wait for in-flight work at shutdown.
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
        ]

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.models)
        while pending:
            process = self._process
            if process is None or process.poll() is not None:
                code = None if process is None else process.returncode
                if self._reader is not None:
                    self._reader.join(5.0)
                raise TritonLaunchError(
                    f"Triton exited (code {code}) before {', '.join(pending)} became ready; "
                    f"last log lines:\n{self.log_tail()}"
                )
            if self._abort.is_set():
                raise TritonLaunchError("the start was aborted (the service is stopping)")
            if time.monotonic() > deadline:
                raise TritonLaunchError(
                    f"{', '.join(pending)} not ready after {timeout_s:.0f} s; "
                    f"last log lines:\n{self.log_tail()}"
                )
            pending = [model for model in pending if not self._model_ready(model)]
            if pending:
                time.sleep(0.2)

    def _model_ready(self, model: str) -> bool:
        url = f"{self.http_url}/v2/models/{model}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _read_log(self) -> None:
        process = self._process
        if process is None or process.stdout is None:
            return
        for raw in process.stdout:
            line = raw.rstrip()
            if not line:
                continue
            self._tail.append(line)
            level = _line_level(line)
            if level >= self.log_level:
                logger.log(level, "triton: %s", line)


def _kill_group(pgid: int) -> None:
    """SIGKILL every process left in Triton's process group (its group id is its pid)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    logger.info("killed the processes left in Triton's process group %d", pgid)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def triton_dist_dir() -> Path:
    """The ``tritonserver`` folder of the nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise TritonLaunchError(
            "the tritonserver binary is missing: install the `embedded` extra (nvidia-pytriton)"
        )
    dist = Path(spec.origin).parent / "tritonserver"
    if not (dist / "bin" / "tritonserver").is_file():
        raise TritonLaunchError(f"the tritonserver binary is missing under {dist}")
    return dist


def _prepare_backends(dist: Path, workdir: Path) -> Path:
    """A backend directory whose python backend carries the stub for this interpreter."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise TritonLaunchError(f"nvidia-pytriton has no Python backend stub for Python {version}")
    backends = workdir / "backends"
    shutil.copytree(dist / "backends", backends, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
    return backends


def _environment(dist: Path | None) -> dict[str, str]:
    """Our environment plus the wheel's libraries (``dist``: the wheel's server folder, None for
    an installed server) and our packages for the backend stub."""
    env = dict(os.environ)
    if dist is not None:
        libs = dist.parent.parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (env.get("LD_LIBRARY_PATH"), str(libs)) if p
        )
    python_path = [str(REPO_ROOT), *site.getsitepackages(), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in python_path if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def _line_level(line: str) -> int:
    """The logging level a Triton or Python log line was written at (INFO when unmarked)."""
    if any(noise in line for noise in _NO_GPU_NOISE):
        return logging.DEBUG
    if match := _TRITON_LEVEL.match(line):
        return _LEVELS[match.group(1)]
    if match := _PYTHON_LEVEL.match(line):
        return int(logging.getLevelName(match.group(1)))
    return logging.INFO
