"""Settings of ``fncall serve``: every flag has an ``FNCALL_*`` environment variable."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one service process."""

    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 50051
    repository: Path = Path("model_repository")
    models: tuple[str, ...] = ("llm",)
    triton_url: str | None = None
    tritonserver: Path | None = None
    build: bool = True
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    log_level: str = "info"
    log_format: str = "text"
    triton_log_level: str = "warning"
    default_max_tokens: int = 512
    max_request_bytes: int = 4 * 1024 * 1024
    shutdown_grace_s: float = 30.0
    triton_start_timeout_s: float = 300.0
    triton_recovery_timeout_s: float = 180.0
    responses_store_size: int = 1000
    responses_store_ttl_s: float = 3600.0

    @property
    def embedded(self) -> bool:
        """Whether this process starts and owns its Triton server."""
        return self.triton_url is None


def _env_list(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The ``serve`` flags; defaults come from ``env`` (``FNCALL_*``), then built-in values."""
    d = Settings()

    def default(name: str, fallback: object) -> object:
        return env.get(f"FNCALL_{name}", fallback)

    p = argparse.ArgumentParser(
        prog="fncall serve",
        description="Serve OpenAI-compatible chat completions with tool calling over REST and "
        "gRPC, decoding on Triton Inference Server (embedded by default).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default=default("HOST", d.host), help="REST and gRPC bind address")
    p.add_argument("--port", type=int, default=default("PORT", d.port), help="REST port")
    p.add_argument(
        "--grpc-port", type=int, default=default("GRPC_PORT", d.grpc_port), help="gRPC port"
    )
    p.add_argument(
        "--repository",
        type=Path,
        default=default("REPOSITORY", d.repository),
        help="Triton model repository (model cards, tokenizers and templates are read from it)",
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        help="Triton model to serve (repeatable; env: comma list) [default: llm]",
    )
    p.add_argument(
        "--triton-url",
        default=default("TRITON_URL", None),
        help="gRPC address of an external Triton (host:port); unset = start an embedded one",
    )
    p.add_argument(
        "--tritonserver",
        type=Path,
        default=default("TRITONSERVER", None),
        help="tritonserver binary for the embedded Triton [default: the nvidia-pytriton wheel's]",
    )
    p.add_argument(
        "--no-build",
        dest="build",
        action="store_false",
        default=default("BUILD", "1") not in ("0", "false", "no"),
        help="do not build the default model when it is missing from the repository",
    )
    p.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        help="accepted API key (repeatable; env FNCALL_API_KEYS: comma list); none = no auth",
    )
    p.add_argument("--log-level", choices=_LOG_LEVELS, default=default("LOG_LEVEL", d.log_level))
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("LOG_FORMAT", d.log_format),
        help="json: one JSON object per line with the request id",
    )
    p.add_argument(
        "--triton-log-level",
        choices=_LOG_LEVELS,
        default=default("TRITON_LOG_LEVEL", d.triton_log_level),
        help="level at which the embedded Triton's log lines are passed on",
    )
    p.add_argument(
        "--default-max-tokens",
        type=int,
        default=default("DEFAULT_MAX_TOKENS", d.default_max_tokens),
        help="completion tokens when a request sets no max_tokens (capped by the context)",
    )
    p.add_argument(
        "--max-request-bytes",
        type=int,
        default=default("MAX_REQUEST_BYTES", d.max_request_bytes),
        help="largest accepted REST body / gRPC message",
    )
    p.add_argument(
        "--shutdown-grace",
        dest="shutdown_grace_s",
        type=float,
        default=default("SHUTDOWN_GRACE", d.shutdown_grace_s),
        help="seconds in-flight requests get to finish after SIGTERM",
    )
    p.add_argument(
        "--triton-start-timeout",
        dest="triton_start_timeout_s",
        type=float,
        default=default("TRITON_START_TIMEOUT", d.triton_start_timeout_s),
        help="seconds to wait for the embedded Triton to load the models",
    )
    p.add_argument(
        "--triton-recovery-timeout",
        dest="triton_recovery_timeout_s",
        type=float,
        default=default("TRITON_RECOVERY_TIMEOUT", d.triton_recovery_timeout_s),
        help="seconds a crashed embedded Triton may take to be restarted before liveness "
        "(/health, gRPC health 'liveness') fails",
    )
    p.add_argument(
        "--responses-store-size",
        type=int,
        default=default("RESPONSES_STORE_SIZE", d.responses_store_size),
        help="responses kept in memory for previous_response_id (per replica; 0 keeps none)",
    )
    p.add_argument(
        "--responses-store-ttl",
        dest="responses_store_ttl_s",
        type=float,
        default=default("RESPONSES_STORE_TTL", d.responses_store_ttl_s),
        help="seconds a stored response can be continued with previous_response_id",
    )
    return p


def load_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from command-line flags over ``FNCALL_*`` environment variables."""
    env = os.environ if env is None else env
    args = parser(env).parse_args(list(argv))
    models = args.models or _env_list(env.get("FNCALL_MODELS")) or list(Settings.models)
    api_keys = (args.api_keys or []) + _env_list(env.get("FNCALL_API_KEYS"))
    return Settings(
        host=args.host,
        port=int(args.port),
        grpc_port=int(args.grpc_port),
        repository=Path(args.repository),
        models=tuple(models),
        triton_url=args.triton_url or None,
        tritonserver=Path(args.tritonserver) if args.tritonserver else None,
        build=bool(args.build),
        api_keys=tuple(api_keys),
        log_level=args.log_level,
        log_format=args.log_format,
        triton_log_level=args.triton_log_level,
        default_max_tokens=int(args.default_max_tokens),
        max_request_bytes=int(args.max_request_bytes),
        shutdown_grace_s=float(args.shutdown_grace_s),
        triton_start_timeout_s=float(args.triton_start_timeout_s),
        triton_recovery_timeout_s=float(args.triton_recovery_timeout_s),
        responses_store_size=int(args.responses_store_size),
        responses_store_ttl_s=float(args.responses_store_ttl_s),
    )
