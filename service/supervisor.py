"""Keeps the embedded Triton alive: notices its exit, restarts it with bounded backoff.

While Triton is down, readiness fails on its own (the engine cannot reach it); liveness fails
only once Triton has been down longer than ``recovery_timeout_s``, so Kubernetes restarts the pod
when this process cannot heal itself. The first start is not retried: a Triton that never came
up is a configuration problem, and ``serve`` exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from service.launcher import TritonLauncher, TritonLaunchError

logger = logging.getLogger(__name__)

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # waits before the 1st, 2nd, ... restart


class TritonSupervisor:
    """Owns one :class:`TritonLauncher` for the life of the service."""

    def __init__(
        self,
        launcher: TritonLauncher,
        *,
        start_timeout_s: float,
        recovery_timeout_s: float,
        poll_s: float = 0.5,
        backoff_s: Sequence[float] = BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._launcher = launcher
        self._start_timeout_s = start_timeout_s
        self._recovery_timeout_s = recovery_timeout_s
        self._poll_s = poll_s
        self._backoff_s = tuple(backoff_s)
        self._clock = clock
        self._down_since: float | None = None
        self.restarts = 0

    def alive(self) -> bool:
        """Liveness: Triton is up, or has been down for less than the recovery timeout."""
        down = self._down_since
        return down is None or self._clock() - down < self._recovery_timeout_s

    async def run(self, stop: asyncio.Event) -> bool:
        """Start Triton, then restart it whenever it exits, until ``stop`` is set. Returns
        whether the first start succeeded (on failure ``stop`` is set)."""
        try:
            await asyncio.to_thread(self._launcher.start, self._start_timeout_s)
        except TritonLaunchError:
            logger.exception("the embedded Triton did not start")
            stop.set()
            return False
        while not stop.is_set():
            if await _wait(stop, self._poll_s):
                break
            if not self._launcher.running:
                await self._recover(stop)
        return True

    async def _recover(self, stop: asyncio.Event) -> None:
        """Restart a dead Triton, backing off between failed attempts."""
        self._down_since = self._clock()
        logger.error(
            "the embedded Triton exited (code %s); restarting it. Last log lines:\n%s",
            self._launcher.returncode,
            self._launcher.log_tail(),
        )
        await asyncio.to_thread(self._launcher.stop)  # reaps it and kills its stubs
        attempt = 0
        while not stop.is_set():
            delay = self._backoff_s[min(attempt, len(self._backoff_s) - 1)]
            if await _wait(stop, delay):
                return
            attempt += 1
            try:
                await asyncio.to_thread(self._launcher.start, self._start_timeout_s)
            except TritonLaunchError as exc:
                logger.error("restart %d of the embedded Triton failed: %s", attempt, exc)
                continue
            self.restarts += 1
            logger.info(
                "the embedded Triton is back after %.1f s", self._clock() - self._down_since
            )
            self._down_since = None
            return


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop``; whether ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True
