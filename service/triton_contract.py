"""The Triton boundary, written once: what the service sends the ``llm`` model, what comes back,
and how a failed request says why.

Imported by both sides (``service.engine`` in the service; ``model_repository/llm/1/model.py``
and ``service.runtime.scheduler`` inside Triton). Errors cross as a JSON object
(``{"kind", "message", "param"}``) in the Triton error message, read back with
:func:`ModelError.from_message`, so a kind and its field are never guessed from prose.
See docs/triton_model.md for the tensor shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal, get_args

# Inputs (one request per inference; every scalar has shape [1]).
INPUT_IDS = "input_ids"  # INT32 [n]
MAX_TOKENS = "max_tokens"  # INT32
TEMPERATURE = "temperature"  # FP32
TOP_P = "top_p"  # FP32
TOP_K = "top_k"  # INT32
SEED = "seed"  # INT64, >= 0
STOP_TOKEN_IDS = "stop_token_ids"  # INT32 [k]
GRAMMAR = "grammar"  # BYTES: llguidance grammar of the assistant turn
GRAMMAR_PREFILL_TOKENS = "grammar_prefill_tokens"  # INT32: prompt tail already in the grammar

# Outputs (streamed; the last response carries a finish reason).
TOKEN_IDS = "token_ids"  # INT32 [m]
FINISH_REASON = "finish_reason"  # BYTES: "" until the last response
PROMPT_TOKENS = "prompt_tokens"  # INT32
COMPLETION_TOKENS = "completion_tokens"  # INT32
CACHED_TOKENS = "cached_tokens"  # INT32: prompt tokens served from the prefix cache

FinishReason = Literal["stop", "length", "cancelled"]
FINISH_REASONS: tuple[FinishReason, ...] = get_args(FinishReason)


@dataclass(frozen=True)
class SamplingDefaults:
    """What an input left out means (OpenAI's defaults; the model card may set others)."""

    max_tokens: int = 256
    temperature: float = 1.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut


SAMPLING_DEFAULTS = SamplingDefaults()

ErrorKind = Literal["invalid", "overloaded", "unavailable", "internal"]
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
# Triton error codes (pb_utils.TritonError attribute names) per kind.
TRITON_CODES: dict[ErrorKind, str] = {
    "invalid": "INVALID_ARG",
    "overloaded": "UNAVAILABLE",
    "unavailable": "UNAVAILABLE",
    "internal": "INTERNAL",
}


@dataclass(frozen=True)
class ModelError:
    """Why the model failed one request; ``param`` names the offending input, if any."""

    kind: ErrorKind
    message: str
    param: str | None = None

    def to_message(self) -> str:
        """The Triton error message carrying this error."""
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_message(cls, text: str) -> ModelError | None:
        """The error in a Triton error message (Triton may prefix it, e.g. with the request
        id); ``None`` when it carries none (an error of Triton's own)."""
        start = text.find('{"kind"')
        if start < 0:
            return None
        try:
            value, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            return None
        if not isinstance(value, dict) or value.get("kind") not in ERROR_KINDS:
            return None
        param = value.get("param")
        return cls(value["kind"], str(value.get("message", "")), param if param else None)
