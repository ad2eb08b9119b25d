"""``fncall serve``: Triton (embedded or external), one ChatService, and its REST and gRPC faces.

Start-up: build the default model if it is missing, open both faces at once (readiness stays
false), then start the embedded Triton; readiness flips when its models are loaded.
Shutdown (SIGTERM/SIGINT): report not-ready, refuse new requests, let in-flight ones finish
within the grace period, then stop the faces, the Triton client and the embedded Triton.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

import uvicorn
from grpc_health.v1 import health_pb2

from service.api.grpc import GrpcServer
from service.api.rest import create_app
from service.auth import ApiKeys
from service.chat import ChatService
from service.config import Settings, load_settings
from service.engine import TritonEngine
from service.launcher import TritonLauncher
from service.lifecycle import Draining
from service.logs import configure_logging
from service.modelbuild.build import BuildOptions, build_model
from service.modelbuild.errors import BuildError
from service.modelbuild.sources import DEFAULT_MODEL
from service.modelcard import CARD_FILE
from service.models import ModelRegistry
from service.responses.store import ResponseStore
from service.supervisor import TritonSupervisor

logger = logging.getLogger(__name__)
DEFAULT_TRITON_MODEL = "llm"


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: ``serve`` coordinates the shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def ensure_default_model(settings: Settings) -> None:
    """Build the packaged default model into ``<repository>/llm`` when it is missing."""
    target = settings.repository / DEFAULT_TRITON_MODEL / "1" / CARD_FILE
    if DEFAULT_TRITON_MODEL not in settings.models or target.is_file():
        return
    logger.info("building the default model %s into %s", DEFAULT_MODEL, settings.repository)
    options = BuildOptions(
        source=DEFAULT_MODEL, repository=settings.repository, name=DEFAULT_TRITON_MODEL
    )
    build_model(options, lambda message: logger.info("build-model: %s", message))


LIVENESS = "liveness"  # the gRPC health name of liveness ("" and the service: readiness)


async def _watch_liveness(grpc_server: GrpcServer, alive: Callable[[], bool]) -> None:
    """Keep the gRPC health name ``liveness`` in step with ``alive`` until cancelled."""
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    while True:
        await grpc_server.health.set(LIVENESS, serving if alive() else not_serving)
        await asyncio.sleep(1.0)


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    launcher = supervisor = None
    if settings.embedded:
        launcher = TritonLauncher(
            settings.repository,
            list(settings.models),
            log_level=settings.triton_log_level,
            tritonserver=settings.tritonserver,
        )
        supervisor = TritonSupervisor(
            launcher,
            start_timeout_s=settings.triton_start_timeout_s,
            recovery_timeout_s=settings.triton_recovery_timeout_s,
        )
    alive = supervisor.alive if supervisor is not None else (lambda: True)
    url = launcher.grpc_url if launcher is not None else str(settings.triton_url)
    engine = TritonEngine(url)
    draining = Draining()
    api_keys = ApiKeys(settings.api_keys)
    chat = ChatService(
        ModelRegistry.load(settings.repository, settings.models),
        engine,
        default_max_tokens=settings.default_max_tokens,
    )
    app = create_app(
        chat,
        api_keys,
        max_request_bytes=settings.max_request_bytes,
        draining=draining,
        alive=alive,
        responses_store=ResponseStore(
            settings.responses_store_size, settings.responses_store_ttl_s
        ),
    )
    rest = _Uvicorn(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=int(settings.shutdown_grace_s),
        )
    )
    grpc_server = GrpcServer(chat, api_keys, draining, max_message_bytes=settings.max_request_bytes)
    grpc_port = grpc_server.bind(settings.host, settings.grpc_port)
    await grpc_server.server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    rest_task = asyncio.create_task(rest.serve(), name="rest")
    health_tasks = [
        asyncio.create_task(grpc_server.watch_readiness(draining), name="grpc-health"),
        asyncio.create_task(_watch_liveness(grpc_server, alive), name="grpc-liveness"),
    ]
    triton = None
    if supervisor is not None:
        triton = asyncio.create_task(supervisor.run(stop), name="triton-supervisor")
    logger.info(
        "serving REST on http://%s:%d and gRPC on %s:%d (Triton %s)",
        settings.host,
        settings.port,
        settings.host,
        grpc_port,
        url,
    )
    try:
        await _until_stop(stop, rest_task)
        logger.info(
            "shutting down: draining in-flight requests (grace %.0f s)", settings.shutdown_grace_s
        )
        draining.active = True
        await grpc_server.set_serving(False)
        rest.should_exit = True
        await asyncio.gather(rest_task, grpc_server.server.stop(settings.shutdown_grace_s))
    finally:
        for task in health_tasks:
            task.cancel()
        await asyncio.gather(*health_tasks, return_exceptions=True)
        await engine.close()
        if launcher is not None and triton is not None:
            stop.set()  # ends the supervisor
            launcher.abort()  # a (re)start in progress gives up at once
            await asyncio.wait([triton])
            await asyncio.to_thread(launcher.stop)
    triton_ok = triton is None or triton.result()
    return 0 if rest.started and triton_ok else 1


async def _until_stop(stop: asyncio.Event, rest_task: asyncio.Task[None]) -> None:
    """Wait for a stop signal, or for the REST server to end on its own (e.g. port in use)."""
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait((waiter, rest_task), return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def main(argv: Sequence[str]) -> int:
    """Entry point of ``fncall serve``."""
    settings = load_settings(argv)
    configure_logging(settings.log_level, settings.log_format)
    try:
        if settings.embedded and settings.build:
            ensure_default_model(settings)
        return asyncio.run(serve(settings))
    except BuildError as err:
        logger.error("cannot build the default model: %s", err)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
