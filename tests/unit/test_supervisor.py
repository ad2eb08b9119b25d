"""The supervisor restarts a dead Triton with backoff and fails liveness only past its timeout."""

from __future__ import annotations

import asyncio

from service.launcher import TritonLaunchError
from service.supervisor import TritonSupervisor


class FakeLauncher:
    """Starts fail ``failures`` times after the first; ``crash()`` kills the running server."""

    def __init__(self, failures: int = 0) -> None:
        self.running = False
        self.returncode: int | None = None
        self.starts = 0
        self.stops = 0
        self.failures = failures

    def start(self, timeout_s: float) -> None:
        self.starts += 1
        if 1 < self.starts <= 1 + self.failures:
            raise TritonLaunchError("no luck")
        self.running, self.returncode = True, None

    def stop(self) -> None:
        self.stops += 1
        self.running = False

    def crash(self) -> None:
        self.running, self.returncode = False, -9

    def log_tail(self) -> str:
        return "last words"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _supervisor(launcher: FakeLauncher, clock: Clock) -> TritonSupervisor:
    return TritonSupervisor(
        launcher,  # type: ignore[arg-type]
        start_timeout_s=1,
        recovery_timeout_s=10,
        poll_s=0.01,
        backoff_s=(0.01, 0.02),
        clock=clock,
    )


async def _until(condition, timeout_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.005)


async def test_a_crashed_triton_is_restarted_with_backoff() -> None:
    launcher, clock, stop = FakeLauncher(failures=2), Clock(), asyncio.Event()
    supervisor = _supervisor(launcher, clock)
    task = asyncio.create_task(supervisor.run(stop))
    await _until(lambda: launcher.running)
    launcher.crash()
    await _until(lambda: supervisor.restarts == 1)
    assert launcher.running and launcher.starts == 4 and launcher.stops == 1  # 2 failed retries
    assert supervisor.alive()
    stop.set()
    assert await task is True


async def test_liveness_fails_only_after_the_recovery_timeout() -> None:
    launcher, clock, stop = FakeLauncher(failures=10**6), Clock(), asyncio.Event()
    supervisor = _supervisor(launcher, clock)
    task = asyncio.create_task(supervisor.run(stop))
    await _until(lambda: launcher.running)
    launcher.crash()
    await _until(lambda: launcher.starts > 3)
    assert supervisor.alive()
    clock.now = 10.5
    assert not supervisor.alive()
    stop.set()
    await task


async def test_a_first_start_that_fails_stops_the_service() -> None:
    class Broken(FakeLauncher):
        def start(self, timeout_s: float) -> None:
            raise TritonLaunchError("bad repository")

    stop = asyncio.Event()
    assert await _supervisor(Broken(), Clock()).run(stop) is False
    assert stop.is_set()
