"""A server fault answers a 500 envelope and keeps the HTTP keep-alive connection usable.

Starlette's ``ServerErrorMiddleware`` re-raises an unhandled exception after answering (even when
an ``Exception`` handler is registered), and uvicorn then closes the connection without saying
so: the client's next request on it fails. This middleware, inside it, answers and swallows.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.admission import error_response
from service.errors import Internal

logger = logging.getLogger(__name__)


class ServerFaults:
    """ASGI middleware: an unhandled exception becomes a 500 envelope (logged), not a reset."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, watched_send)
        except Exception:
            logger.exception("unhandled error")
            if started:  # nothing left to say over HTTP: the connection must go
                raise
            error = Internal("The server had an error processing your request.")
            await error_response(error)(scope, receive, send)
