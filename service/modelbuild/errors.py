"""The one error the model-repository builder raises for anything the user can fix."""

from __future__ import annotations


class BuildError(Exception):
    """A model cannot be built; the message says why and, where possible, how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
