"""API keys: ``Authorization: Bearer <key>`` on REST, ``authorization`` metadata on gRPC."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

from service.errors import Unauthenticated


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The accepted keys, kept and compared as SHA-256 digests in constant time."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(k) for k in keys if k]

    @property
    def enabled(self) -> bool:
        """Whether any key is configured (no keys = no authentication)."""
        return bool(self._digests)

    def check(self, authorization: str | None) -> None:
        """Raise ``Unauthenticated`` unless ``authorization`` is ``Bearer <accepted key>``."""
        if not self.enabled:
            return
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated(
                "Missing API key: send it as 'Authorization: Bearer <key>'.", code="missing_api_key"
            )
        candidate = _digest(key.strip())
        # Compare against every key so the time taken does not reveal which one matched.
        matched = False
        for digest in self._digests:
            matched |= secrets.compare_digest(candidate, digest)
        if not matched:
            raise Unauthenticated("Incorrect API key provided.")
