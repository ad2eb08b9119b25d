"""Generate the Python gRPC stubs for ``protos/`` into ``service/api/proto/``.

The stubs are committed; ``tests/unit/api/test_protos_current.py`` fails when they are stale.
Run: ``python scripts/gen_protos.py`` (needs ``grpcio-tools``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
OUT_DIR = ROOT / "service" / "api" / "proto"
# protoc writes absolute imports (`from fncall.v1 import chat_pb2`); ours are package-relative.
_ABS_IMPORT = re.compile(r"^from fncall\.v1 import (\w+_pb2) as", re.MULTILINE)


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every .proto file; return the written files."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    written = sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in written:
        path.write_text(_ABS_IMPORT.sub(r"from . import \1 as", path.read_text()))
    for path in written:
        for package in path.relative_to(out_dir).parents:
            init = out_dir / package / "__init__.py"
            if not init.exists():
                init.write_text("")
    return written


def main() -> int:
    """Regenerate into a temp dir, then replace ``service/api/proto``."""
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))
        for src in files + sorted(Path(tmp).rglob("__init__.py")):
            dst = OUT_DIR / src.relative_to(tmp)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(src.read_text())
    print(f"generated stubs in {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
