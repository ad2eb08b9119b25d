"""Build one Triton model repository entry from a model source.

Layout written (``<repository>/<name>/``)::

    config.pbtxt, 1/model.py ...   copied from the in-tree template model_repository/llm/
    1/model.onnx (+ .data)         the decoder graph (service.modelbuild.onnx_export)
    1/tokenizer.json               HF tokenizers, rebuilt from GGUF metadata or copied
    1/chat_template.jinja          the model's chat template
    1/model_card.json              service.modelcard.ModelCard
    1/build_stamp.json             the inputs the artifacts were built from

Everything is built in a temp dir next to the target and moved into place at the end, so a
failure leaves the previous entry (or nothing) behind. A rerun whose stamp matches skips the
conversion and only refreshes the template files and the card's served name / dialect.
Precision ``auto`` (the default) builds int8 or int4, whichever ``cpu_precision`` measures
faster on this CPU, and afterwards keeps the entry's precision instead of measuring again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service.modelbuild.card import make_card
from service.modelbuild.checkpoint import check_architecture, load_checkpoint
from service.modelbuild.cpu_precision import CHOICES as AUTO_PRECISIONS
from service.modelbuild.cpu_precision import pick_precision
from service.modelbuild.errors import BuildError
from service.modelbuild.gguf_metadata import read_gguf_metadata
from service.modelbuild.onnx_export import export_onnx
from service.modelbuild.sources import ModelSource, default_cache_dir, resolve_source
from service.modelbuild.tokenizer import TokenizerBundle, gguf_tokenizer, hf_tokenizer
from service.modelcard import (
    CARD_FILE,
    CHAT_TEMPLATE_FILE,
    ONNX_FILE,
    TOKENIZER_FILE,
    ModelCard,
    Precision,
    ToolDialect,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

CONVERTER_VERSION = 4  # bump when the artifacts for the same inputs change
STAMP_FILE = "build_stamp.json"
ARTIFACTS = (ONNX_FILE, f"{ONNX_FILE}.data", TOKENIZER_FILE, CHAT_TEMPLATE_FILE, CARD_FILE)
TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "model_repository" / "llm"


@dataclass(frozen=True)
class BuildOptions:
    """What to build and where."""

    source: str
    repository: Path
    name: str = "llm"
    precision: Precision | Literal["auto"] = "auto"
    served_name: str | None = None
    tool_dialect: ToolDialect | None = None
    force: bool = False
    cache_dir: Path | None = None
    template_dir: Path = TEMPLATE_DIR


@dataclass(frozen=True)
class BuildResult:
    """Where the entry is, and whether this run had to convert anything."""

    model_dir: Path
    card: ModelCard
    rebuilt: bool


@contextlib.contextmanager
def timed(progress: Progress, what: str) -> Iterator[None]:
    """Report ``what`` before a long step and its duration after it."""
    progress(f"{what} ...")
    started = time.perf_counter()
    yield
    progress(f"{what}: done in {time.perf_counter() - started:.1f}s")


def build_model(options: BuildOptions, progress: Progress) -> BuildResult:
    """Build (or confirm current) ``<repository>/<name>`` from ``options.source``."""
    if not options.name or options.name != Path(options.name).name or options.name.startswith("."):
        raise BuildError(f"invalid Triton model name {options.name!r}")
    if not options.template_dir.is_dir():
        raise BuildError(
            f"the Triton model template {options.template_dir} is missing; "
            "build from a source checkout"
        )
    source = resolve_source(options.source, options.cache_dir or default_cache_dir(), progress)
    target = options.repository / options.name
    precision = _precision(options, source, target, progress)
    stamp = _stamp(source, precision)
    current = _current_card(target, stamp)
    if current is not None and not options.force:
        card = _refresh_card(current, options, source, target)
        _sync_template(options.template_dir, target)
        progress(f"{target} is current ({source.name}, {precision}); nothing to convert")
        return BuildResult(target, card, rebuilt=False)
    card = _build_into_place(source, options, precision, target, stamp, progress)
    return BuildResult(target, card, rebuilt=True)


def _precision(
    options: BuildOptions, source: ModelSource, target: Path, progress: Progress
) -> Precision:
    """The precision to build: as asked, or for ``auto`` the int8 or int4 the entry was built
    with from this source (so later builds, converter upgrades included, keep what this CPU
    was measured to prefer), else what ``pick_precision`` measures (also with ``--force``)."""
    if options.precision != "auto":
        return options.precision
    if not options.force:
        kept = _recorded_precision(target, source)
        if kept is not None:
            progress(f"precision auto: the entry was built {kept} (--force measures again)")
            return kept
    return pick_precision(progress)


def _recorded_precision(target: Path, source: ModelSource) -> Precision | None:
    """The int8 or int4 recorded in ``target``'s stamp for this source, if any."""
    try:
        recorded = json.loads((target / "1" / STAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(recorded, dict) or recorded.get("source_sha256") != source.sha256:
        return None
    precision = recorded.get("precision")
    return next((p for p in AUTO_PRECISIONS if p == precision), None)


def _stamp(source: ModelSource, precision: str) -> dict[str, Any]:
    return {
        "converter_version": CONVERTER_VERSION,
        "source_sha256": source.sha256,
        "precision": precision,
    }


def _current_card(target: Path, stamp: dict[str, Any]) -> ModelCard | None:
    version_dir = target / "1"
    try:
        recorded = json.loads((version_dir / STAMP_FILE).read_text(encoding="utf-8"))
        if recorded != stamp or not (version_dir / ONNX_FILE).is_file():
            return None
        return ModelCard.load(version_dir)
    except (OSError, ValueError, TypeError):
        return None


def _refresh_card(
    card: ModelCard, options: BuildOptions, source: ModelSource, target: Path
) -> ModelCard:
    """Apply a changed ``--served-name`` / ``--tool-dialect`` / sampling defaults without
    reconverting."""
    changes: dict[str, Any] = {}
    if dict(source.sampling_defaults) != card.sampling_defaults:
        changes["sampling_defaults"] = dict(source.sampling_defaults)
    if options.served_name and options.served_name != card.name:
        changes["name"] = options.served_name
    if options.tool_dialect and options.tool_dialect != card.tool_dialect:
        changes["tool_dialect"] = options.tool_dialect
    if not changes:
        return card
    card = dataclasses.replace(card, **changes)
    card.save(target / "1")
    return card


def _build_into_place(
    source: ModelSource,
    options: BuildOptions,
    precision: Precision,
    target: Path,
    stamp: dict[str, Any],
    progress: Progress,
) -> ModelCard:
    options.repository.mkdir(parents=True, exist_ok=True)
    staging = options.repository / f".{options.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        card = _build_artifacts(source, options, precision, staging / "1", progress)
        (staging / "1" / STAMP_FILE).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
        _install(staging, target, options.template_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(f"built {target}")
    return card


def _build_artifacts(
    source: ModelSource,
    options: BuildOptions,
    precision: Precision,
    out_dir: Path,
    progress: Progress,
) -> ModelCard:
    out_dir.mkdir(parents=True)
    with timed(progress, "reading the tokenizer and chat template"):
        architecture, bundle = read_tokenizer(source)
    check_architecture(architecture)
    if not bundle.chat_template:
        raise BuildError(f"{source.path} has no chat template")
    (out_dir / TOKENIZER_FILE).write_text(bundle.to_json(), encoding="utf-8")
    (out_dir / CHAT_TEMPLATE_FILE).write_text(bundle.chat_template, encoding="utf-8")
    with timed(progress, f"reading weights from {source.path.name}"):
        checkpoint = load_checkpoint(source.path)
    with timed(progress, f"converting to ONNX ({precision})"):
        facts = export_onnx(checkpoint, out_dir, precision, progress)
    card = make_card(
        served_name=options.served_name or source.name,
        source=source,
        config=checkpoint.config,
        bundle=bundle,
        precision=precision,
        tool_dialect=options.tool_dialect,
        graph_facts=facts,
    )
    card.save(out_dir)
    return card


def read_tokenizer(source: ModelSource) -> tuple[str, TokenizerBundle]:
    """The source's architecture name and its tokenizer bundle."""
    if source.kind == "hf":
        config = json.loads((source.path / "config.json").read_text(encoding="utf-8"))
        return str(config.get("model_type", "")), hf_tokenizer(source.path)
    metadata = read_gguf_metadata(source.path)
    return str(metadata.get("general.architecture", "")), gguf_tokenizer(metadata)


def _install(staging: Path, target: Path, template_dir: Path) -> None:
    """Move the staged entry into place; the template files come along unless target is it."""
    if target.resolve() == template_dir.resolve():
        for artifact in (*ARTIFACTS, STAMP_FILE):
            built = staging / "1" / artifact
            if built.is_file():
                os.replace(built, target / "1" / artifact)
            else:
                (target / "1" / artifact).unlink(missing_ok=True)
        return
    _sync_template(template_dir, staging)
    retired = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def _sync_template(template_dir: Path, target: Path) -> None:
    """Copy the template's files (config.pbtxt, 1/model.py, ...) where they differ."""
    if target.resolve() == template_dir.resolve():
        return
    skip = {*ARTIFACTS, STAMP_FILE}
    for path in sorted(template_dir.rglob("*")):
        relative = path.relative_to(template_dir)
        if path.is_dir() or "__pycache__" in relative.parts or path.name in skip:
            continue
        destination = target / relative
        if destination.is_file() and _digest(destination) == _digest(path):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.tmp")
        shutil.copy2(path, partial)
        os.replace(partial, destination)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
