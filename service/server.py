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
from collections.abc import Iterator, Sequence

import uvicorn

from service.api.grpc import GrpcServer
from service.api.rest import create_app
from service.auth import ApiKeys
from service.chat import ChatService
from service.config import Settings, load_settings
from service.engine import TritonEngine
from service.launcher import TritonLauncher, TritonLaunchError
from service.lifecycle import Draining
from service.logs import configure_logging
from service.modelbuild.build import BuildOptions, build_model
from service.modelbuild.errors import BuildError
from service.modelbuild.sources import DEFAULT_MODEL
from service.modelcard import CARD_FILE
from service.models import ModelRegistry
from service.responses.store import ResponseStore

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


async def _start_triton(launcher: TritonLauncher, timeout_s: float, stop: asyncio.Event) -> bool:
    """Start the embedded Triton; on failure log why and ask the process to stop."""
    try:
        await asyncio.to_thread(launcher.start, timeout_s)
    except TritonLaunchError:
        logger.exception("the embedded Triton did not start")
        stop.set()
        return False
    return True


async def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit status."""
    launcher = None
    if settings.embedded:
        launcher = TritonLauncher(
            settings.repository,
            list(settings.models),
            log_level=settings.triton_log_level,
            tritonserver=settings.tritonserver,
        )
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
    health_task = asyncio.create_task(grpc_server.watch_readiness(draining), name="grpc-health")
    triton = None
    if launcher is not None:
        triton = asyncio.create_task(_start_triton(launcher, settings.triton_start_timeout_s, stop))
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
        health_task.cancel()
        await asyncio.gather(health_task, return_exceptions=True)
        await engine.close()
        if launcher is not None and triton is not None:
            await asyncio.wait([triton])  # a start in progress finishes before the stop
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
