"""Staging a Triton model from built artifacts with parameter overrides."""

from __future__ import annotations

from pathlib import Path

from service.model_repository import set_parameters, stage_model

CONFIG = 'backend: "python"\nparameters: { key: "max_queue" value: { string_value: "64" } }\n'


def test_set_parameters_replaces_and_adds() -> None:
    text = set_parameters(CONFIG, {"max_queue": 2, "max_seq_len": 256})
    assert 'key: "max_queue" value: { string_value: "2" }' in text
    assert 'key: "max_seq_len" value: { string_value: "256" }' in text
    assert '"64"' not in text
    assert text.count("max_queue") == 1


def test_stage_model_links_artifacts_and_copies_the_template(tmp_path: Path) -> None:
    artifacts = tmp_path / "built"
    artifacts.mkdir()
    (artifacts / "model.onnx").write_bytes(b"onnx")
    model_dir = stage_model(artifacts, tmp_path / "repo", "tiny", {"max_queue": 1})
    assert (model_dir / "1" / "model.onnx").resolve() == (artifacts / "model.onnx").resolve()
    assert (model_dir / "1" / "model.py").read_text().startswith('"""Triton Python-backend')
    config = (model_dir / "config.pbtxt").read_text()
    assert 'key: "max_queue" value: { string_value: "1" }' in config
    assert not any(line.startswith("name:") for line in config.splitlines())
    assert "decoupled: true" in config
