"""Session fixtures for integration tests: built models and one shared Triton per model.

Two environment variables point the same tests elsewhere (scripts/gpu_check.sh uses them):
``FNCALL_TEST_REPOSITORY``, where the built models are looked up (default: the in-tree
``model_repository``), and ``FNCALL_TEST_DEVICE=gpu``, which stages every model as a
``KIND_GPU`` instance on ONNX Runtime's CUDA provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from service.launcher import TritonLauncher
from service.model_repository import stage_model
from tests.integration.serving import ServiceProcess, running_service

BUILT_REPOSITORY = Path(
    os.environ.get("FNCALL_TEST_REPOSITORY")
    or Path(__file__).resolve().parents[2] / "model_repository"
)
DEVICE = os.environ.get("FNCALL_TEST_DEVICE", "cpu")
QWEN = "qwen2.5-coder-0.5b-instruct"
API_KEY = "test-key-7b1e"
REQUEST_TIMEOUT_S = 180.0
SMOLLM = "smollm2-135m-instruct"
SMOLLM_TRITON_NAME = "smollm2"
# Small bounds so slot and queue limits are reachable from a test.
SMOLLM_PARAMETERS = {"max_active_sequences": 4, "max_seq_len": 512, "max_queue": 4}


def built_model(card_name: str) -> Path | None:
    """The version directory of a model built into the in-tree repository, if any."""
    for card in sorted(BUILT_REPOSITORY.glob("*/1/model_card.json")):
        if json.loads(card.read_text(encoding="utf-8")).get("name") == card_name:
            return card.parent
    return None


def stage(artifacts: Path, repository: Path, name: str, parameters: dict[str, int]) -> Path:
    """``stage_model`` on the test device (``gpu``: KIND_GPU, CUDA provider; else the
    template's CPU instance)."""
    if DEVICE == "gpu":
        gpu = {**parameters, "execution_provider": "cuda"}
        return stage_model(artifacts, repository, name, gpu, kind="KIND_GPU")
    if DEVICE != "cpu":
        raise pytest.UsageError(f"FNCALL_TEST_DEVICE={DEVICE!r}: expected cpu or gpu")
    return stage_model(artifacts, repository, name, parameters)


@pytest.fixture(scope="session")
def smollm_artifacts() -> Path:
    artifacts = built_model(SMOLLM)
    if artifacts is None:
        pytest.skip(
            f"{SMOLLM} is not built: run `fncall build-model {SMOLLM} "
            f"--repository model_repository --name {SMOLLM_TRITON_NAME}`"
        )
    return artifacts


@pytest.fixture(scope="session")
def smollm_repository(smollm_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding the llm template over the SmolLM2 artifacts, with test bounds."""
    repository = tmp_path_factory.mktemp("triton-repository")
    stage(smollm_artifacts, repository, SMOLLM_TRITON_NAME, SMOLLM_PARAMETERS)
    return repository


@pytest.fixture(scope="session")
def triton_smollm(smollm_repository: Path) -> Iterator[TritonLauncher]:
    """One Triton serving SmolLM2 as ``smollm2`` for the whole session."""
    launcher = TritonLauncher(smollm_repository, [SMOLLM_TRITON_NAME])
    launcher.start(timeout_s=180)
    yield launcher
    launcher.stop()


@pytest.fixture(scope="session")
def qwen_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The session's one ``fncall serve`` stack: embedded Triton, the default Qwen model as
    ``llm`` (4 active sequences), one API key; REST and gRPC on free ports."""
    artifacts = built_model(QWEN)
    if artifacts is None:
        pytest.skip(f"{QWEN} is not built: run `fncall build-model` (or `make models`)")
    workdir = tmp_path_factory.mktemp("qwen-service")
    stage(artifacts, workdir / "repository", "llm", {"max_active_sequences": 4})
    with running_service(
        workdir / "repository", ["llm"], workdir, ["--api-key", API_KEY]
    ) as service:
        yield service


def openai_client(service: ServiceProcess, api_key: str = API_KEY) -> openai.OpenAI:
    """The official SDK pointed at ``service`` (no retries: tests see every error)."""
    return openai.OpenAI(
        base_url=f"{service.url}/v1", api_key=api_key, max_retries=0, timeout=REQUEST_TIMEOUT_S
    )


@pytest.fixture(scope="session")
def client(qwen_service: ServiceProcess) -> Iterator[openai.OpenAI]:
    """A sync SDK client of the shared stack."""
    with openai_client(qwen_service) as sdk:
        yield sdk
