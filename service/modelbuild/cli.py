"""``fncall build-model``: build a Triton model repository entry from a packaged model,
a ``.gguf`` file or a Hugging Face folder."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from service.modelbuild.build import BuildOptions, build_model
from service.modelbuild.card import TOOL_DIALECTS
from service.modelbuild.errors import BuildError
from service.modelbuild.sources import DEFAULT_MODEL, PACKAGED_MODELS
from service.modelcard import Precision


def parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    p = argparse.ArgumentParser(
        prog="fncall build-model",
        description="Build <repository>/<name>/ (config.pbtxt, 1/model.py, 1/model.onnx, "
        "1/tokenizer.json, 1/chat_template.jinja, 1/model_card.json).",
    )
    p.add_argument(
        "source",
        nargs="?",
        default=DEFAULT_MODEL,
        help=f"packaged model ({', '.join(PACKAGED_MODELS)}), a .gguf file or a Hugging Face "
        f"folder (default: {DEFAULT_MODEL})",
    )
    p.add_argument("--repository", type=Path, default=Path("model_repository"))
    p.add_argument("--name", default="llm", help="Triton model name (default: llm)")
    p.add_argument(
        "--precision",
        choices=[*get_args(Precision), "auto"],
        default="auto",
        help="weights of the ONNX graph: auto (default: int8 or int4, whichever multiplies "
        "faster on this CPU, timed in about 6 s; a rebuild keeps the entry's choice unless "
        "--force), int8 (MatMulNBits 8-bit: tool calls as good as fp32 at a third of its "
        "size; the fastest on some CPUs), int4 (the fastest on others), fp16 (GPU) or fp32",
    )
    p.add_argument("--served-name", help="OpenAI model id (default: from the source)")
    p.add_argument("--tool-dialect", choices=TOOL_DIALECTS, help="override the detected one")
    p.add_argument("--cache-dir", type=Path, help="where joined GGUFs are kept")
    p.add_argument(
        "--force", action="store_true", help="rebuild even if current (auto: measure again)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the build; 0 on success, 1 with a one-line reason on a BuildError."""
    args = parser().parse_args(argv)
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    options = BuildOptions(
        source=args.source,
        repository=args.repository,
        name=args.name,
        precision=args.precision,
        served_name=args.served_name,
        tool_dialect=args.tool_dialect,
        force=args.force,
        cache_dir=args.cache_dir,
    )
    try:
        result = build_model(options, progress)
    except BuildError as exc:
        print(f"fncall build-model: error: {exc.message}", file=sys.stderr)
        return 1
    card = result.card
    progress(
        f"{result.model_dir}: served as {card.name!r}, {card.architecture}, {card.precision}, "
        f"tool dialect {card.tool_dialect}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
