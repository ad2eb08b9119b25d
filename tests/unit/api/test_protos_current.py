"""The committed gRPC stubs are exactly what `scripts/gen_protos.py` makes from `protos/`."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_are_current(tmp_path: Path) -> None:
    gen = _load_generator()
    fresh = {p.relative_to(tmp_path): p.read_text() for p in gen.generate(tmp_path)}
    committed_dir = ROOT / "service" / "api" / "proto"
    committed = {
        p.relative_to(committed_dir): p.read_text()
        for p in committed_dir.rglob("*")
        if p.suffix in {".py", ".pyi"} and p.name != "__init__.py"
    }
    assert fresh.keys() == committed.keys(), "run: python scripts/gen_protos.py"
    stale = [str(name) for name, text in fresh.items() if committed[name] != text]
    assert not stale, f"stale stubs {stale}; run: python scripts/gen_protos.py"


def test_stubs_import_and_describe_the_service() -> None:
    from service.api.proto.fncall.v1 import chat_pb2, chat_pb2_grpc

    service = chat_pb2.DESCRIPTOR.services_by_name["ChatCompletions"]
    assert {m.name for m in service.methods} == {"Create", "CreateStream", "ListModels"}
    assert hasattr(chat_pb2_grpc, "ChatCompletionsServicer")
