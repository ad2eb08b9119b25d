"""Stage a Triton model from built artifacts: the ``llm`` template plus links to the artifacts.

Used by tests, benchmarks and embedded serving to run a built model under another name or with
other ``config.pbtxt`` parameters without copying (or rebuilding) its weights.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "model_repository" / "llm"
_TEMPLATE_FILES = ("config.pbtxt", "1/model.py")
INSTANCE_KINDS = ("KIND_CPU", "KIND_GPU")
_KIND = re.compile(r"^([^#\n]*?)\bkind:\s*KIND_[A-Z]+", re.MULTILINE)  # not in comments


def set_parameters(config_text: str, overrides: Mapping[str, object]) -> str:
    """``config.pbtxt`` text with the ``parameters`` entries in ``overrides`` replaced or added."""
    for key, value in overrides.items():
        entry = f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
        pattern = re.compile(rf'^parameters:\s*{{\s*key:\s*"{re.escape(key)}".*$', re.MULTILINE)
        config_text, found = pattern.subn(entry, config_text)
        if not found:
            config_text = config_text.rstrip("\n") + "\n" + entry + "\n"
    return config_text


def set_instance_kind(config_text: str, kind: str) -> str:
    """``config.pbtxt`` text with every ``instance_group`` of kind ``kind`` (``KIND_GPU``: the
    instance is placed on a GPU; the ``execution_provider`` parameter picks ONNX Runtime's)."""
    if kind not in INSTANCE_KINDS:
        raise ValueError(f"instance kind {kind!r}: expected one of {INSTANCE_KINDS}")
    text, found = _KIND.subn(rf"\1kind: {kind}", config_text)
    if not found:
        raise ValueError("config.pbtxt has no instance_group kind to set")
    return text


def stage_model(
    artifacts: Path,
    repository: Path,
    name: str,
    parameters: Mapping[str, object] | None = None,
    template_dir: Path = TEMPLATE_DIR,
    *,
    kind: str | None = None,
) -> Path:
    """Write ``<repository>/<name>/`` from the template (``parameters`` and the instance ``kind``
    overridden); link every file of ``artifacts`` into its version directory ``1/``. Returns the
    model directory."""
    model_dir = Path(repository) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    for relative in _TEMPLATE_FILES:
        shutil.copy2(template_dir / relative, model_dir / relative)
    config = model_dir / "config.pbtxt"
    text = set_parameters(config.read_text(), parameters or {})
    config.write_text(set_instance_kind(text, kind) if kind else text)
    for artifact in Path(artifacts).iterdir():
        link = version_dir / artifact.name
        if artifact.is_file() and not link.exists():
            link.symlink_to(artifact.resolve())
    return model_dir
