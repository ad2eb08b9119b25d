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


def set_parameters(config_text: str, overrides: Mapping[str, object]) -> str:
    """``config.pbtxt`` text with the ``parameters`` entries in ``overrides`` replaced or added."""
    for key, value in overrides.items():
        entry = f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
        pattern = re.compile(rf'^parameters:\s*{{\s*key:\s*"{re.escape(key)}".*$', re.MULTILINE)
        config_text, found = pattern.subn(entry, config_text)
        if not found:
            config_text = config_text.rstrip("\n") + "\n" + entry + "\n"
    return config_text


def stage_model(
    artifacts: Path,
    repository: Path,
    name: str,
    parameters: Mapping[str, object] | None = None,
    template_dir: Path = TEMPLATE_DIR,
) -> Path:
    """Write ``<repository>/<name>/`` from the template; link every file of ``artifacts`` into
    its version directory ``1/``. Returns the model directory."""
    model_dir = Path(repository) / name
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    for relative in _TEMPLATE_FILES:
        shutil.copy2(template_dir / relative, model_dir / relative)
    config = model_dir / "config.pbtxt"
    config.write_text(set_parameters(config.read_text(), parameters or {}))
    for artifact in Path(artifacts).iterdir():
        link = version_dir / artifact.name
        if artifact.is_file() and not link.exists():
            link.symlink_to(artifact.resolve())
    return model_dir
