"""The build orchestration: layout, idempotency, atomic replacement (converter faked)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from service.modelbuild import build
from service.modelbuild.build import BuildOptions, build_model
from service.modelbuild.checkpoint import ModelConfig
from service.modelbuild.errors import BuildError
from service.modelcard import ModelCard
from tests.unit.models import TINY_TEMPLATE, write_tiny_gguf

CONFIG = ModelConfig(
    architecture="qwen2",
    num_layers=2,
    hidden_size=8,
    intermediate_size=16,
    num_heads=2,
    num_kv_heads=1,
    head_dim=4,
    vocab_size=270,
    rope_theta=10000.0,
    rms_norm_eps=1e-6,
    context_length=64,
    tie_word_embeddings=True,
    attention_bias=True,
)


@dataclass
class FakeCheckpoint:
    config: ModelConfig


class FakeConverter:
    """Stands in for load_checkpoint + export_onnx (and the ``auto`` precision probe); counts
    exports and probes, can be told to fail."""

    def __init__(self) -> None:
        self.exports = 0
        self.fail = False
        self.probes: list[str] = []  # what each precision probe picks, in turn
        self.probed = 0

    def pick(self, progress: Any) -> str:
        self.probed += 1
        return self.probes.pop(0) if self.probes else "int8"

    def load(self, path: Path) -> FakeCheckpoint:
        return FakeCheckpoint(CONFIG)

    def export(
        self, checkpoint: Any, out_dir: Path, precision: str, progress: Any
    ) -> dict[str, Any]:
        self.exports += 1
        (out_dir / "model.onnx").write_bytes(b"onnx")
        (out_dir / "model.onnx.data").write_bytes(b"data")
        if self.fail:
            raise BuildError("export exploded")
        return {"graph": "fake/1", "precision": precision}


@pytest.fixture
def converter(monkeypatch: pytest.MonkeyPatch) -> FakeConverter:
    fake = FakeConverter()
    monkeypatch.setattr(build, "load_checkpoint", fake.load)
    monkeypatch.setattr(build, "export_onnx", fake.export)
    monkeypatch.setattr(build, "pick_precision", fake.pick)
    return fake


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    """A Triton model template like model_repository/llm (with a stray artifact and cache)."""
    root = tmp_path / "template" / "llm"
    (root / "1" / "__pycache__").mkdir(parents=True)
    (root / "config.pbtxt").write_text('backend: "python"\n')
    (root / "1" / "model.py").write_text("# model\n")
    (root / "1" / "scheduler.py").write_text("# scheduler\n")
    (root / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"pyc")
    (root / "1" / "model.onnx").write_bytes(b"stale artifact")
    return root


def _options(tmp_path: Path, template_dir: Path, **overrides: Any) -> BuildOptions:
    source = tmp_path / "Tiny-Chat.gguf"
    if not source.exists():
        write_tiny_gguf(source)
    values: dict[str, Any] = {
        "source": str(source),
        "repository": tmp_path / "repo",
        "name": "tiny",
        "cache_dir": tmp_path / "cache",
        "template_dir": template_dir,
        **overrides,
    }
    return BuildOptions(**values)


def _quiet(_: str) -> None:
    pass


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_build_writes_the_entry(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    result = build_model(_options(tmp_path, template_dir), _quiet)
    assert result.rebuilt and result.model_dir == tmp_path / "repo" / "tiny"
    assert _files(result.model_dir) == [
        "1/build_stamp.json",
        "1/chat_template.jinja",
        "1/model.onnx",
        "1/model.onnx.data",
        "1/model.py",
        "1/model_card.json",
        "1/scheduler.py",
        "1/tokenizer.json",
        "config.pbtxt",
    ]
    assert (result.model_dir / "1" / "model.onnx").read_bytes() == b"onnx"
    assert (result.model_dir / "1" / "chat_template.jinja").read_text() == TINY_TEMPLATE
    card = ModelCard.load(result.model_dir / "1")
    assert (card.name, card.tool_dialect, card.precision) == ("tiny-chat", "hermes", "int8")
    assert card.stop_token_ids == [
        card.special_tokens["<|im_end|>"],
        card.special_tokens["<|endoftext|>"],
    ]
    assert card.extra["graph"] == "fake/1" and card.extra["model_config"]["num_layers"] == 2
    assert card.source["kind"] == "gguf"
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["tiny"]


def test_rerun_is_current_and_skips_conversion(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    build_model(_options(tmp_path, template_dir), _quiet)
    (template_dir / "1" / "model.py").write_text("# model v2\n")
    messages: list[str] = []
    result = build_model(_options(tmp_path, template_dir, served_name="renamed"), messages.append)
    assert not result.rebuilt and converter.exports == 1
    assert any("is current" in m for m in messages)
    assert ModelCard.load(result.model_dir / "1").name == "renamed"
    assert (result.model_dir / "1" / "model.py").read_text() == "# model v2\n"
    build_model(_options(tmp_path, template_dir, precision="fp16"), _quiet)
    build_model(_options(tmp_path, template_dir, precision="fp16", force=True), _quiet)
    assert converter.exports == 3


def test_auto_precision_is_measured_once_then_kept(
    tmp_path: Path, template_dir: Path, converter: FakeConverter, monkeypatch: pytest.MonkeyPatch
) -> None:
    converter.probes = ["int4", "int8", "int8"]
    first = build_model(_options(tmp_path, template_dir), _quiet)
    assert ModelCard.load(first.model_dir / "1").precision == "int4" and converter.probed == 1
    messages: list[str] = []
    again = build_model(_options(tmp_path, template_dir), messages.append)
    assert not again.rebuilt and converter.probed == 1 and converter.exports == 1
    assert "precision auto: the entry was built int4 (--force measures again)" in messages
    monkeypatch.setattr(build, "CONVERTER_VERSION", build.CONVERTER_VERSION + 1)
    upgraded = build_model(_options(tmp_path, template_dir), _quiet)  # reconverts, same width
    assert upgraded.rebuilt and converter.probed == 1
    assert ModelCard.load(upgraded.model_dir / "1").precision == "int4"
    forced = build_model(_options(tmp_path, template_dir, force=True), _quiet)
    assert forced.rebuilt and converter.probed == 2
    assert ModelCard.load(forced.model_dir / "1").precision == "int8"
    asked = build_model(_options(tmp_path, template_dir, precision="int4"), _quiet)
    assert asked.rebuilt and converter.probed == 2  # an explicit precision is not measured
    build_model(_options(tmp_path, template_dir, precision="fp16"), _quiet)
    assert build_model(_options(tmp_path, template_dir), _quiet).rebuilt  # fp16 is not auto's
    assert converter.probed == 3


def test_failed_first_build_leaves_nothing(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    converter.fail = True
    with pytest.raises(BuildError, match="export exploded"):
        build_model(_options(tmp_path, template_dir), _quiet)
    assert list((tmp_path / "repo").iterdir()) == []


def test_failed_rebuild_keeps_the_previous_entry(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    first = build_model(_options(tmp_path, template_dir), _quiet)
    before = {name: (first.model_dir / name).read_bytes() for name in _files(first.model_dir)}
    converter.fail = True
    with pytest.raises(BuildError):
        build_model(_options(tmp_path, template_dir, force=True), _quiet)
    after = {name: (first.model_dir / name).read_bytes() for name in _files(first.model_dir)}
    assert after == before
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["tiny"]


def test_building_into_the_template_keeps_its_files(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    options = _options(tmp_path, template_dir, repository=template_dir.parent, name="llm")
    build_model(options, _quiet)
    assert (template_dir / "1" / "model.py").read_text() == "# model\n"
    assert (template_dir / "1" / "model.onnx").read_bytes() == b"onnx"
    assert json.loads((template_dir / "1" / "build_stamp.json").read_text())["precision"] == "int8"
    assert not build_model(options, _quiet).rebuilt


def test_unsupported_architecture(
    tmp_path: Path, template_dir: Path, converter: FakeConverter
) -> None:
    source = write_tiny_gguf(tmp_path / "phi.gguf", architecture="phi3")
    with pytest.raises(BuildError, match="unsupported architecture 'phi3'"):
        build_model(_options(tmp_path, template_dir, source=str(source)), _quiet)
    assert converter.exports == 0


def test_missing_template_fails_before_converting(tmp_path: Path, converter: FakeConverter) -> None:
    options = _options(tmp_path, tmp_path / "nowhere")
    with pytest.raises(BuildError, match=r"template .* is missing"):
        build_model(options, _quiet)
    assert converter.exports == 0


@pytest.mark.parametrize("name", ["", "a/b", "..", ".hidden"])
def test_invalid_model_name(tmp_path: Path, template_dir: Path, name: str) -> None:
    with pytest.raises(BuildError, match="invalid Triton model name"):
        build_model(_options(tmp_path, template_dir, name=name), _quiet)
