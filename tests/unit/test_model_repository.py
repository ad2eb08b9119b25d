"""Staging a Triton model from built artifacts with parameter overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.model_repository import set_instance_kind, set_parameters, stage_model

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


def test_set_instance_kind_places_the_instance() -> None:
    config = "instance_group [ { count: 1, kind: KIND_CPU } ]\n"
    assert (
        set_instance_kind(config, "KIND_GPU") == "instance_group [ { count: 1, kind: KIND_GPU } ]\n"
    )
    with pytest.raises(ValueError, match="KIND_TPU"):
        set_instance_kind(config, "KIND_TPU")
    with pytest.raises(ValueError, match="no instance_group"):
        set_instance_kind('backend: "python"\n', "KIND_GPU")


def test_stage_model_sets_the_instance_kind(tmp_path: Path) -> None:
    artifacts = tmp_path / "built"
    artifacts.mkdir()
    model_dir = stage_model(artifacts, tmp_path / "repo", "gpu", {}, kind="KIND_GPU")
    config = (model_dir / "config.pbtxt").read_text()
    assert "kind: KIND_GPU" in config and "KIND_CPU" not in config
