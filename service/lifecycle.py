"""Process lifecycle state shared by both faces."""

from __future__ import annotations


class Draining:
    """Set when the process is shutting down: new work is refused, in-flight work finishes."""

    def __init__(self) -> None:
        self.active = False
