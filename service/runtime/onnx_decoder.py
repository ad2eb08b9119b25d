"""The ONNX Runtime implementation of :class:`KVDecoder` over the graph of ``onnx_export``.

The KV cache is preallocated once per layer as ``[num_slots, kv_heads, max_seq, head_dim]``
(numpy on CPU, device memory with CUDA). Slots ``a..b`` are one contiguous block of it, so a
graph call over those slots binds ``past`` and ``present`` to the same memory and
``GroupQueryAttention`` writes the new keys/values in place: nothing is ever copied or re-packed.

Decode rows (one new token) of all slots run as one batched call per run of nearby slots; free
slots inside a run ride along as dummy rows (their write lands past their length, where it is
overwritten before it is ever read). Fresh prompts of adjacent slots run as one right-padded
call; other prefill rows run on their own, chunked (GQA's "subsequent prompt" mode).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

logger = logging.getLogger(__name__)

DEFAULT_PREFILL_CHUNK = 512
DEFAULT_MAX_GAP = 4
# Rows x padded length of one batched prefill call at most: ORT's CPU attention (GEMM path)
# materializes rows x heads x length^2 scores, and 16 x 400 tokens in one call prefilled 25 %
# slower than in calls of this size (docs/onnx_model.md).
DEFAULT_PREFILL_GROUP_TOKENS = 2048
_ROTARY_INITIALIZER = "rotary.cos"


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            return len(allowed)
    return max(1, len(cores) or (os.cpu_count() or 1))


@dataclass(frozen=True)
class _Call:
    """One graph run over the contiguous slots ``start .. start + count``."""

    start: int
    count: int
    input_ids: np.ndarray  # int64 [count, seq]
    seqlens_k: np.ndarray  # int32 [count]
    logits_index: np.ndarray  # int64 [count]


class OnnxDecoder:
    """A :class:`KVDecoder` running ``model.onnx`` on ONNX Runtime (CPU or CUDA EP)."""

    def __init__(
        self,
        model_path: Path,
        num_slots: int,
        max_seq_len: int,
        *,
        provider: str = "cpu",
        intra_op_threads: int | None = None,
        prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
        max_gap: int = DEFAULT_MAX_GAP,
        prefill_group_tokens: int = DEFAULT_PREFILL_GROUP_TOKENS,
    ) -> None:
        model_path = Path(model_path)
        limit = _rotary_positions(model_path)
        if max_seq_len > limit:
            raise ValueError(f"max_seq_len {max_seq_len} exceeds the model's {limit} positions")
        self._num_slots = num_slots
        self._max_seq_len = max_seq_len
        self._prefill_chunk = max(1, prefill_chunk)
        self._max_gap = max_gap
        self._prefill_group_tokens = prefill_group_tokens
        self._session, self._device = _open_session(model_path, provider, intra_op_threads)
        self._binding = self._session.io_binding()
        self._bound_block: tuple[int, int] | None = None
        self._scores: np.ndarray = np.empty(0, dtype=np.float32)  # see _bind_scores
        self._lengths = np.zeros(num_slots, dtype=np.int64)
        self._describe_graph()
        self._allocate_cache()
        if self._device != "cpu":  # ORT allocates the scores there (see _bind_scores)
            for name in self._score_outputs:
                self._binding.bind_output(name, self._device)
        logger.info(
            "OnnxDecoder %s on %s: %d slots x %d tokens, %d layers, KV %s (%.0f MiB)",
            model_path,
            self._device,
            num_slots,
            max_seq_len,
            self._num_layers,
            self._kv_dtype.__name__,
            self._cache_bytes / 2**20,
        )

    # -- KVDecoder -----------------------------------------------------------------------------

    @property
    def num_slots(self) -> int:
        return self._num_slots

    @property
    def max_seq_len(self) -> int:
        return self._max_seq_len

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def length(self, slot: int) -> int:
        return int(self._lengths[slot])

    def reset(self, slot: int) -> None:
        self._lengths[slot] = 0

    def truncate(self, slot: int, length: int) -> None:
        if not 0 <= length <= self._lengths[slot]:
            raise ValueError(f"slot {slot} holds {self._lengths[slot]} tokens, not {length}")
        self._lengths[slot] = length

    @property
    def can_copy_prefix(self) -> bool:
        return self._device == "cpu"

    def copy_prefix(self, source: int, slot: int, length: int) -> None:
        """A numpy copy of ``length`` positions of every layer's keys and values (CPU only)."""
        if self._device != "cpu":
            raise NotImplementedError("copy_prefix needs the KV cache in host memory")
        if not 0 <= length <= self._lengths[source] or source == slot:
            raise ValueError(f"cannot copy {length} tokens of slot {source} into slot {slot}")
        for pair in self._cache:
            for kv in pair:
                assert isinstance(kv, np.ndarray)
                kv[slot, :, :length] = kv[source, :, :length]
        self._lengths[slot] = length

    def step(self, slots: Sequence[int], tokens: Sequence[Sequence[int]]) -> np.ndarray:
        self._check(slots, tokens)
        logits = np.empty((len(slots), self._vocab_size), dtype=np.float32)
        decode_rows = [row for row, toks in enumerate(tokens) if len(toks) == 1]
        prefill_rows = [row for row, toks in enumerate(tokens) if len(toks) > 1]
        for group in self._prefill_groups(slots, tokens, prefill_rows):
            if len(group) == 1:
                logits[group[0]] = self._prefill(slots[group[0]], tokens[group[0]])
            else:
                self._prefill_batch(group, slots, tokens, logits)
        for group in self._decode_groups([slots[row] for row in decode_rows], decode_rows):
            self._decode(group, slots, tokens, logits)
        return logits

    # -- graph calls ---------------------------------------------------------------------------

    def _prefill(self, slot: int, tokens: Sequence[int]) -> np.ndarray:
        """Append a prompt (in chunks) to one slot; the logits of its last token."""
        ids = np.asarray(tokens, dtype=np.int64)
        out = np.empty(0, dtype=np.float32)
        for begin in range(0, len(ids), self._prefill_chunk):
            chunk = ids[begin : begin + self._prefill_chunk]
            total = self._lengths[slot] + len(chunk)
            call = _Call(
                slot,
                1,
                chunk[None, :],
                np.array([total - 1], dtype=np.int32),
                np.array([len(chunk) - 1], dtype=np.int64),
            )
            out = self._run(call)[0]
            self._lengths[slot] = total
        return out

    def _prefill_batch(
        self,
        group: list[int],
        slots: Sequence[int],
        tokens: Sequence[Sequence[int]],
        logits: np.ndarray,
    ) -> None:
        """Fresh prompts of adjacent slots, right-padded into one call."""
        lengths = np.array([len(tokens[row]) for row in group], dtype=np.int64)
        ids = np.zeros((len(group), int(lengths.max())), dtype=np.int64)
        for i, row in enumerate(group):
            ids[i, : lengths[i]] = tokens[row]
        call = _Call(slots[group[0]], len(group), ids, (lengths - 1).astype(np.int32), lengths - 1)
        out = self._run(call)
        for i, row in enumerate(group):
            logits[row] = out[i]
            self._lengths[slots[row]] = lengths[i]

    def _decode(
        self,
        group: list[int],
        slots: Sequence[int],
        tokens: Sequence[Sequence[int]],
        logits: np.ndarray,
    ) -> None:
        """One batched call for decode rows whose slots lie in one run (gaps as dummy rows)."""
        first, last = slots[group[0]], slots[group[-1]]
        count = last - first + 1
        ids = np.zeros((count, 1), dtype=np.int64)
        for row in group:
            ids[slots[row] - first, 0] = tokens[row][0]
        seqlens = self._lengths[first : last + 1].astype(np.int32)
        self._run(_Call(first, count, ids, seqlens, np.zeros(count, dtype=np.int64)))
        for row in group:
            logits[row] = self._logits[slots[row] - first]
            self._lengths[slots[row]] += 1

    def _run(self, call: _Call) -> np.ndarray:
        """Run one call over the cache block of its slots; the logits rows (a scratch view)."""
        binding = self._binding
        binding.bind_cpu_input("input_ids", call.input_ids)
        binding.bind_cpu_input("seqlens_k", call.seqlens_k)
        total = np.array(int(call.seqlens_k.max()) + 1, dtype=np.int32)
        binding.bind_cpu_input("total_sequence_length", total)
        binding.bind_cpu_input("logits_index", call.logits_index)
        self._bind_block(call.start, call.count)
        self._bind_scores(call.count, call.input_ids.shape[1], int(total))
        self._session.run_with_iobinding(binding)
        return self._logits[: call.count]

    def _bind_scores(self, count: int, sequence: int, total: int) -> None:
        """Every layer's attention scores (graphs on ORT's CPU GEMM attention path: write-only,
        never read) into one scratch buffer of this call's shape, so that memory holds one
        layer's scores instead of ORT's arena keeping all of them; grown when a call needs
        more, at most heads x prefill tokens x context. Off the CPU they stay bound to ORT's
        own allocation (``__init__``)."""
        if not self._score_outputs or self._device != "cpu":
            return
        shape = [count, self._num_heads, sequence, total]
        need = count * self._num_heads * sequence * total
        if self._scores.size < need:
            self._scores = np.empty(need, dtype=np.float32)
        address = self._scores.ctypes.data
        for name in self._score_outputs:
            self._binding.bind_output(name, "cpu", 0, np.float32, shape, address)

    def _bind_block(self, start: int, count: int) -> None:
        """Bind past and present of slots ``start .. start + count`` to the same memory, and the
        logits to the CPU scratch rows (ORT copies them off the device); kept while unchanged."""
        if self._bound_block == (start, count):
            return
        binding, device = self._binding, self._device
        shape = [count, self._kv_heads, self._max_seq_len, self._head_dim]
        offset = start * self._slot_bytes
        for layer, pointers in enumerate(self._cache_ptrs):
            for kind, pointer in zip(("key", "value"), pointers, strict=True):
                address = pointer + offset
                binding.bind_input(
                    f"past_key_values.{layer}.{kind}", device, 0, self._kv_dtype, shape, address
                )
                binding.bind_output(
                    f"present.{layer}.{kind}", device, 0, self._kv_dtype, shape, address
                )
        logits = self._logits[:count]
        binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        self._bound_block = (start, count)

    # -- planning ------------------------------------------------------------------------------

    def _prefill_groups(
        self, slots: Sequence[int], tokens: Sequence[Sequence[int]], rows: list[int]
    ) -> list[list[int]]:
        """Prefill rows by slot; runs of adjacent fresh slots whose prompts fit one chunk
        are grouped (one padded call of at most ``prefill_group_tokens`` rows x length), every
        other row stands alone (chunked)."""

        def batchable(row: int) -> bool:
            return self._lengths[slots[row]] == 0 and len(tokens[row]) <= self._prefill_chunk

        def fits(group: list[int], row: int) -> bool:
            longest = max(len(tokens[r]) for r in (*group, row))
            return (len(group) + 1) * longest <= self._prefill_group_tokens

        groups: list[list[int]] = []
        for row in sorted(rows, key=lambda r: slots[r]):
            last = groups[-1][-1] if groups else None
            if (
                last is not None
                and batchable(row)
                and batchable(last)
                and slots[row] == slots[last] + 1
                and fits(groups[-1], row)
            ):
                groups[-1].append(row)
            else:
                groups.append([row])
        return groups

    def _decode_groups(self, decode_slots: list[int], rows: list[int]) -> list[list[int]]:
        """Rows sorted by slot, split where a gap is wider than ``max_gap`` or holds a full slot."""
        order = sorted(range(len(rows)), key=lambda i: decode_slots[i])
        groups: list[list[int]] = []
        prev = -1
        for i in order:
            slot = decode_slots[i]
            if groups and self._can_bridge(prev, slot):
                groups[-1].append(rows[i])
            else:
                groups.append([rows[i]])
            prev = slot
        return groups

    def _can_bridge(self, prev: int, slot: int) -> bool:
        """Whether the free slots strictly between ``prev`` and ``slot`` can ride as dummy rows."""
        if slot - prev - 1 > self._max_gap:
            return False
        return bool(np.all(self._lengths[prev + 1 : slot] < self._max_seq_len))

    def _check(self, slots: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        if len(slots) != len(tokens) or len(set(slots)) != len(slots):
            raise ValueError("step needs one token list per slot and distinct slots")
        for slot, toks in zip(slots, tokens, strict=True):
            if not 0 <= slot < self._num_slots:
                raise ValueError(f"slot {slot} out of range 0..{self._num_slots - 1}")
            if not toks:
                raise ValueError(f"slot {slot}: no tokens to append")
            if self._lengths[slot] + len(toks) > self._max_seq_len:
                raise ValueError(
                    f"slot {slot}: {self._lengths[slot]} + {len(toks)} tokens exceed "
                    f"max_seq_len {self._max_seq_len}"
                )

    # -- setup ---------------------------------------------------------------------------------

    def _describe_graph(self) -> None:
        """Layer count, KV geometry and dtype, vocabulary size from the session's I/O."""
        inputs = {meta.name: meta for meta in self._session.get_inputs()}
        past = inputs["past_key_values.0.key"]
        self._num_layers = sum(1 for name in inputs if name.endswith(".key"))
        self._kv_heads, self._head_dim = int(past.shape[1]), int(past.shape[3])
        self._kv_dtype: type[np.generic] = (
            np.float16 if past.type == "tensor(float16)" else np.float32
        )
        outputs = self._session.get_outputs()
        logits = next(m for m in outputs if m.name == "logits")
        self._vocab_size = int(logits.shape[1])
        scores = [m for m in outputs if m.name.startswith("attention_scores.")]
        self._score_outputs = [m.name for m in scores]
        self._num_heads = int(scores[0].shape[1]) if scores else 0

    def _allocate_cache(self) -> None:
        """One ``[num_slots, kv_heads, max_seq, head_dim]`` buffer per layer and kind."""
        shape = (self._num_slots, self._kv_heads, self._max_seq_len, self._head_dim)
        itemsize = np.dtype(self._kv_dtype).itemsize
        self._slot_bytes = self._kv_heads * self._max_seq_len * self._head_dim * itemsize
        self._cache_bytes = 2 * self._num_layers * self._num_slots * self._slot_bytes
        self._logits = np.empty((self._num_slots, self._vocab_size), dtype=np.float32)
        # owns the memory that the bindings address through _cache_ptrs
        self._cache: list[tuple[np.ndarray, np.ndarray] | tuple[ort.OrtValue, ort.OrtValue]] = []
        self._cache_ptrs: list[tuple[int, int]] = []
        for _ in range(self._num_layers):
            if self._device == "cpu":
                pair_np = (np.zeros(shape, self._kv_dtype), np.zeros(shape, self._kv_dtype))
                self._cache.append(pair_np)
                self._cache_ptrs.append((pair_np[0].ctypes.data, pair_np[1].ctypes.data))
            else:
                pair_dev = tuple(
                    ort.OrtValue.ortvalue_from_shape_and_type(shape, self._kv_dtype, "cuda", 0)
                    for _ in range(2)
                )
                self._cache.append((pair_dev[0], pair_dev[1]))
                self._cache_ptrs.append((pair_dev[0].data_ptr(), pair_dev[1].data_ptr()))


def _rotary_positions(model_path: Path) -> int:
    """Rows of the graph's rotary cache: the most positions a slot may hold."""
    model = onnx.load(str(model_path), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.name == _ROTARY_INITIALIZER:
            return int(tensor.dims[0])
    raise ValueError(f"{model_path} has no {_ROTARY_INITIALIZER} initializer")


def _open_session(
    model_path: Path, provider: str, intra_op_threads: int | None
) -> tuple[ort.InferenceSession, str]:
    """An optimized session on CUDA when asked for and available, else on the CPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads or physical_cores()
    providers: list[str] = ["CPUExecutionProvider"]
    device = "cpu"
    if provider == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            preload = getattr(ort, "preload_dlls", None)  # pip's CUDA/cuDNN (ORT >= 1.21)
            if preload is not None:
                preload()
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            device = "cuda"
        else:
            logger.warning("CUDAExecutionProvider is not available; running on the CPU")
    elif provider != "cpu":
        raise ValueError(f"unknown provider {provider!r}: expected 'cpu' or 'cuda'")
    session = ort.InferenceSession(str(model_path), options, providers=providers)
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        # CUDA is listed but failed to load (missing libraries): the session runs on the CPU,
        # so the KV cache must live there too.
        logger.warning("the CUDA provider failed to load; running on the CPU")
        device = "cpu"
    return session, device
