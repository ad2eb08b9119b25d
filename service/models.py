"""The served models: each built model in the Triton repository, loaded once at startup.

A served model is ``<repository>/<triton model>/1/`` (model card, chat template, tokenizer); its
served id is the card's ``name``, its Triton name the folder name.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.errors import ModelNotFound
from service.modelcard import CARD_FILE, ModelCard
from service.prompting.template import ChatTemplate
from service.prompting.tokenizer import PromptTokenizer
from service.prompting.tool_prompt import supports_tools
from service.toolcalls import ToolCallParser, parser_class

logger = logging.getLogger(__name__)

_MAX_SEQ_LEN = re.compile(r'key:\s*"max_seq_len"\s*,?\s*value:\s*{\s*string_value:\s*"(\d+)"')


@dataclass(frozen=True)
class ServedModel:
    """Everything the chat pipeline needs about one model."""

    id: str  # served id (card name)
    triton_model: str  # Triton model (folder) name
    card: ModelCard
    template: ChatTemplate
    tokenizer: PromptTokenizer
    dialect: type[ToolCallParser]
    native_tools: bool  # the chat template renders ``tools`` itself
    max_context: int  # prompt + completion tokens: the card's context or the engine's KV slot
    fingerprint: str  # OpenAI ``system_fingerprint``
    created: int  # unix time the model was built

    @classmethod
    def load(cls, model_dir: Path, triton_model: str) -> ServedModel:
        """Load the built artifacts of one Triton model version directory."""
        card = ModelCard.load(model_dir)
        names = {token_id: token for token, token_id in card.special_tokens.items()}
        bos = names.get(card.bos_token_id) if card.bos_token_id is not None else None
        template = ChatTemplate.from_file(
            model_dir / card.chat_template_file, bos, names.get(card.eos_token_id)
        )
        card_bytes = (model_dir / CARD_FILE).read_bytes()
        capacity = _engine_capacity(model_dir.parent)
        return cls(
            id=card.name,
            triton_model=triton_model,
            card=card,
            template=template,
            tokenizer=PromptTokenizer.from_file(model_dir / card.tokenizer_file),
            dialect=parser_class(card.tool_dialect),
            native_tools=supports_tools(template),
            max_context=min(card.context_length, capacity or card.context_length),
            fingerprint=f"fncall-{card.precision}-{hashlib.sha256(card_bytes).hexdigest()[:10]}",
            created=int((model_dir / CARD_FILE).stat().st_mtime),
        )


def _engine_capacity(triton_model_dir: Path) -> int | None:
    """``max_seq_len`` (KV tokens per sequence) from the Triton model's ``config.pbtxt``."""
    config = triton_model_dir / "config.pbtxt"
    if not config.is_file():
        return None
    match = _MAX_SEQ_LEN.search(config.read_text(encoding="utf-8"))
    return int(match.group(1)) if match else None


class ModelRegistry:
    """Served models by id."""

    def __init__(self, models: Iterable[ServedModel]) -> None:
        self._models: dict[str, ServedModel] = {}
        for model in models:
            if model.id in self._models:
                raise ValueError(f"two Triton models serve the same model id {model.id!r}")
            self._models[model.id] = model

    @classmethod
    def load(cls, repository: Path, triton_models: Sequence[str]) -> ModelRegistry:
        """Load ``<repository>/<name>/1/`` for every Triton model name."""
        models = [ServedModel.load(Path(repository) / name / "1", name) for name in triton_models]
        for model in models:
            logger.info(
                "serving %s from Triton model %s (dialect %s, context %d, native tools %s)",
                model.id,
                model.triton_model,
                model.card.tool_dialect,
                model.max_context,
                model.native_tools,
            )
        return cls(models)

    def get(self, served_id: str) -> ServedModel:
        """The model served as ``served_id``; ``ModelNotFound`` otherwise."""
        try:
            return self._models[served_id]
        except KeyError:
            raise ModelNotFound(
                f"The model {served_id!r} does not exist; available: {sorted(self._models)}.",
                param="model",
            ) from None

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
