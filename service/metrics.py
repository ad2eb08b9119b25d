"""Prometheus metrics of the service (served at ``GET /metrics``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)

REQUESTS = Counter(
    "fncall_requests_total",
    "Chat completion requests by face (rest, grpc) and outcome (HTTP status class or code).",
    ["face", "status"],
)
REQUEST_LATENCY = Histogram(
    "fncall_request_duration_seconds",
    "End-to-end chat completion latency.",
    ["face"],
    buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "fncall_requests_in_flight",
    "Chat completion requests being served (queued in Triton or decoding).",
)
TIME_TO_FIRST_TOKEN = Histogram(
    "fncall_time_to_first_token_seconds",
    "Time from the request reaching the engine to its first generated token.",
    buckets=_LATENCY_BUCKETS,
)
PROMPT_TOKENS = Counter("fncall_prompt_tokens_total", "Prompt tokens processed.", ["model"])
PROMPT_CACHED_TOKENS = Counter(
    "fncall_prompt_cached_tokens_total",
    "Prompt tokens served from the model's prefix cache (the rest of the prompt was computed).",
    ["model"],
)
COMPLETION_TOKENS = Counter(
    "fncall_completion_tokens_total", "Completion tokens generated.", ["model"]
)
TOOL_CALLS = Counter("fncall_tool_calls_total", "Tool calls returned to clients.", ["model"])


@dataclass
class RequestOutcome:
    """What a face reports about one chat completion; ``status`` is set as it resolves."""

    status: str


@contextmanager
def track_request(face: str, unresolved: str) -> Iterator[RequestOutcome]:
    """Count one request in flight, then record its outcome and latency (``unresolved`` is the
    status recorded when the face never set one, e.g. on an unexpected error)."""
    outcome = RequestOutcome(unresolved)
    started = time.perf_counter()
    IN_FLIGHT.inc()
    try:
        yield outcome
    finally:
        IN_FLIGHT.dec()
        REQUESTS.labels(face, outcome.status).inc()
        REQUEST_LATENCY.labels(face).observe(time.perf_counter() - started)
