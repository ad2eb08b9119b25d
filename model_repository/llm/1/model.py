"""Triton Python-backend model ``llm``: decoupled streaming generation over ONNX Runtime.

The hooks stay thin: ``initialize`` builds an :class:`OnnxDecoder` and a :class:`Scheduler`
from the model card and artifacts in this version directory, ``execute`` parses each request and
hands it to the scheduler (responses stream back through the request's response sender),
``finalize`` shuts the scheduler down. See docs/triton_model.md for the I/O contract.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from service import triton_contract as contract
from service.modelcard import ModelCard
from service.runtime.constraint import GrammarCompiler
from service.runtime.llm_config import LlmConfig
from service.runtime.onnx_decoder import OnnxDecoder
from service.runtime.scheduler import Output, Request, RequestError, Scheduler, SchedulerConfig

logger = logging.getLogger(__name__)

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class _Sink:
    """A scheduler sink over one request's decoupled response sender.

    Triton 2.51 keeps the model from unloading while a cancelled request's sender is alive or
    was touched after its final flag, so: ``is_cancelled`` is only ever called by the decode
    loop (never after it retired the request), a cancelled request gets the bare final flag and
    no more tensors, and the sender is dropped with the final response.
    """

    def __init__(self, sender: Any) -> None:
        self._sender: Any = sender
        self._cancelled = False

    def send(self, output: Output) -> None:
        sender = self._sender
        if sender is None:
            return
        if output.final:
            self._sender = None
        if self._cancelled:
            if output.final:
                sender.send(flags=_FINAL)
            return
        if output.error is not None:
            # Codes by name: the stub binds pb_utils.TritonError only after importing this file.
            code = getattr(pb_utils.TritonError, contract.TRITON_CODES[output.error.kind])
            error = pb_utils.TritonError(output.error.model_error.to_message(), code)
            response = pb_utils.InferenceResponse(error=error)
        else:
            response = pb_utils.InferenceResponse(output_tensors=_tensors(output))
        sender.send(response, flags=_FINAL if output.final else 0)

    def is_cancelled(self) -> bool:
        sender = self._sender
        if sender is not None and not self._cancelled:
            self._cancelled = bool(sender.is_cancelled())
        return self._cancelled


def _tensors(output: Output) -> list[Any]:
    reason = (output.finish_reason or "").encode()
    return [
        pb_utils.Tensor(contract.TOKEN_IDS, np.asarray(output.token_ids, dtype=np.int32)),
        pb_utils.Tensor(contract.FINISH_REASON, np.array([reason], dtype=np.object_)),
        pb_utils.Tensor(contract.PROMPT_TOKENS, np.array([output.prompt_tokens], dtype=np.int32)),
        pb_utils.Tensor(
            contract.COMPLETION_TOKENS, np.array([output.completion_tokens], dtype=np.int32)
        ),
        pb_utils.Tensor(contract.CACHED_TOKENS, np.array([output.cached_tokens], dtype=np.int32)),
    ]


def _input(request: Any, name: str) -> Any:
    return pb_utils.get_input_tensor_by_name(request, name)


def _scalar(request: Any, name: str, default: Any) -> Any:
    tensor = _input(request, name)
    if tensor is None:
        return default
    values = tensor.as_numpy().reshape(-1)
    if values.size != 1:
        raise RequestError("invalid", f"{name} must hold exactly one value", name)
    value = values[0]
    return value.item() if isinstance(value, np.generic) else value


def _parse(request: Any, sink: _Sink, grammars: GrammarCompiler) -> Request:
    """The scheduler's view of one inference request (its grammar compiled here, on Triton's
    thread, so a cold compile never stalls the decode loop)."""
    ids = _input(request, contract.INPUT_IDS).as_numpy().reshape(-1).tolist()
    grammar = _scalar(request, contract.GRAMMAR, b"")
    constraint = None
    if grammar:
        prefill = int(_scalar(request, contract.GRAMMAR_PREFILL_TOKENS, 0))
        if not 0 <= prefill < len(ids):
            raise RequestError("invalid", "grammar_prefill_tokens must lie in [0, prompt length)")
        text = grammar.decode() if isinstance(grammar, bytes) else str(grammar)
        constraint = grammars.constraint(text, ids[len(ids) - prefill :] if prefill else [])
    stop = _input(request, contract.STOP_TOKEN_IDS)
    seed = _scalar(request, contract.SEED, None)
    defaults = contract.SAMPLING_DEFAULTS
    return Request(
        prompt_ids=ids,
        max_tokens=int(_scalar(request, contract.MAX_TOKENS, defaults.max_tokens)),
        sink=sink,
        temperature=float(_scalar(request, contract.TEMPERATURE, defaults.temperature)),
        top_p=float(_scalar(request, contract.TOP_P, defaults.top_p)),
        top_k=int(_scalar(request, contract.TOP_K, defaults.top_k)),
        seed=None if seed is None else int(seed),
        stop_token_ids=() if stop is None else tuple(int(t) for t in stop.as_numpy().reshape(-1)),
        constraint=constraint,
    )


class TritonPythonModel:
    """Hooks called by Triton's Python backend."""

    def initialize(self, args: dict[str, Any]) -> None:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        version_dir = Path(args["model_repository"]) / args["model_version"]
        model_config = json.loads(args["model_config"])
        config = LlmConfig.from_triton(model_config.get("parameters", {}))
        card = ModelCard.load(version_dir)
        decoder = OnnxDecoder(
            version_dir / card.onnx_file,
            config.max_active_sequences,
            min(config.max_seq_len, card.context_length),
            provider=config.provider(),
            intra_op_threads=config.intra_op_threads or None,
        )
        tokenizer_json = (version_dir / card.tokenizer_file).read_text(encoding="utf-8")
        self._grammars = GrammarCompiler(
            tokenizer_json, decoder.vocab_size, cache_size=config.grammar_cache_size
        )
        self._scheduler = Scheduler(
            decoder,
            SchedulerConfig(
                max_queue=config.max_queue,
                max_total_kv_tokens=config.max_total_kv_tokens,
                prefill_chunk=config.prefill_chunk,
                eos_token_ids=tuple(card.stop_token_ids),
                prefix_cache=bool(config.prefix_cache),
            ),
        )
        logger.info("model %s ready: %s (%s)", args["model_name"], card.name, config)

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            sink = _Sink(request.get_response_sender())
            try:
                self._scheduler.submit(_parse(request, sink, self._grammars))
            except RequestError as error:
                sink.send(Output([], error=error))
            except Exception as exc:  # a server bug: fail this request, keep the others
                logger.exception("could not queue a request")
                sink.send(Output([], error=RequestError("internal", type(exc).__name__)))
        return None

    def finalize(self) -> None:
        self._scheduler.shutdown()
