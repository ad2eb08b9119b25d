"""Test helper: the built models of ``model_repository/`` as served models (skip if not built)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from service.modelcard import CARD_FILE
from service.models import ServedModel

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


@cache
def _load(triton_model: str) -> ServedModel | None:
    model_dir = REPOSITORY / triton_model / "1"
    if not (model_dir / CARD_FILE).is_file():
        return None
    return ServedModel.load(model_dir, triton_model)


def served_model(triton_model: str) -> ServedModel:
    """The built model ``triton_model`` (``llm``: Qwen, ``smollm2``); skip when not built."""
    model = _load(triton_model)
    if model is None:
        pytest.skip(f"model_repository/{triton_model} is not built (fncall build-model)")
    return model
