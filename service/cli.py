"""The ``fncall`` command: ``serve`` (everything on the embedded default) and ``build-model``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """usage: fncall <command> [options]

commands:
  serve         start Triton (embedded, or use --triton-url) and the REST + gRPC API
  build-model   build a Triton model repository entry from a GGUF or Hugging Face model

Run `fncall <command> --help` for the options of each command.
"""


def _command(name: str) -> Callable[[Sequence[str]], int] | None:
    if name == "serve":
        from service.server import main as serve_main

        return serve_main
    if name == "build-model":
        from service.modelbuild.cli import main as build_main

        return build_main
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch to a subcommand; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command = _command(args[0])
    if command is None:
        print(f"fncall: unknown command {args[0]!r}\n\n{USAGE}", end="", file=sys.stderr)
        return 2
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
