"""Assemble the model card: architecture numbers, token ids, stop ids and tool-call dialect."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, get_args

from service.modelbuild.errors import BuildError
from service.modelbuild.sources import ModelSource
from service.modelbuild.tokenizer import TokenizerBundle
from service.modelcard import ModelCard, Precision, ToolDialect

if TYPE_CHECKING:
    from service.modelbuild.checkpoint import ModelConfig

logger = logging.getLogger(__name__)

TOOL_DIALECTS: tuple[str, ...] = get_args(ToolDialect)

# Tokens that end a turn in the chat formats we know; each is a stop id when the vocabulary has it.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "</s>")


def detect_tool_dialect(architecture: str, template: str | None, model_name: str) -> ToolDialect:
    """The tool-call format a model's chat template (or, failing that, its name) implies."""
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return "mistral"
    if "<|eot_id|>" in text and ("ipython" in text or "tools" in text):
        return "llama3_json"
    if "<tool_call>" in text and architecture == "qwen2":
        return "hermes"
    if "smollm" in model_name.lower() or "SmolLM" in text:
        return "smollm2"
    if "<tool_call>" in text:
        return "hermes"
    raise BuildError(
        "cannot tell the tool-call dialect from the chat template; "
        f"pass --tool-dialect ({', '.join(TOOL_DIALECTS)})"
    )


def stop_token_ids(bundle: TokenizerBundle) -> list[int]:
    """eos first, then the source's other end ids and every known end-of-turn token present."""
    ids = [bundle.eos_token_id, *bundle.extra_eos_ids]
    ids += [bundle.special_tokens[t] for t in END_OF_TURN_TOKENS if t in bundle.special_tokens]
    return list(dict.fromkeys(ids))


def make_card(
    *,
    served_name: str,
    source: ModelSource,
    config: ModelConfig,
    bundle: TokenizerBundle,
    precision: Precision,
    tool_dialect: ToolDialect | None,
    graph_facts: dict[str, Any],
) -> ModelCard:
    """The card for one built model; ``tool_dialect=None`` means detect it."""
    dialect = tool_dialect or detect_tool_dialect(
        config.architecture, bundle.chat_template, served_name
    )
    return ModelCard(
        name=served_name,
        architecture=config.architecture,
        precision=precision,
        num_layers=config.num_layers,
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        num_kv_heads=config.num_kv_heads,
        head_dim=config.head_dim,
        vocab_size=config.vocab_size,
        context_length=config.context_length,
        eos_token_id=bundle.eos_token_id,
        stop_token_ids=stop_token_ids(bundle),
        tool_dialect=dialect,
        bos_token_id=bundle.bos_token_id,
        pad_token_id=bundle.pad_token_id,
        add_bos_token=bundle.add_bos_token,
        special_tokens=dict(bundle.special_tokens),
        source=source.describe(),
        sampling_defaults=dict(source.sampling_defaults),
        extra={**graph_facts, "model_config": asdict(config)},
    )
