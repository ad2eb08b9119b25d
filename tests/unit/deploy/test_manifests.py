"""Kubernetes manifests validate against the schemas; the Dockerfile passes hadolint."""

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
MANIFESTS = sorted(p for p in (ROOT / "deploy").glob("*.yaml") if p.name != "kustomization.yaml")


def _tool(name: str) -> str:
    """A console script of the test extra: this interpreter's scripts dir first (CI runs
    `.venv/bin/pytest` without activating the venv), then PATH."""
    local = Path(sysconfig.get_path("scripts")) / name
    found = str(local) if local.is_file() else shutil.which(name)
    assert found, f"{name} is missing: install the test extra"
    return found


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFESTS)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid(manifest: Path) -> None:
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_probes_and_env_match_the_service() -> None:
    deployment = yaml.safe_load((ROOT / "deploy" / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_source = (ROOT / "service" / "config.py").read_text()
    for env in container["env"]:
        assert env["name"].startswith("FNCALL_")
        assert f'"{env["name"].removeprefix("FNCALL_")}"' in config_source, env["name"]
    assert container["readinessProbe"]["grpc"]["port"] == 50051


def test_dockerfile_lints_clean() -> None:
    result = subprocess.run(
        [_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_environment_is_read_by_the_service() -> None:
    config_source = (ROOT / "service" / "config.py").read_text()
    names = set(re.findall(r"\bFNCALL_([A-Z_]+)=", (ROOT / "Dockerfile").read_text()))
    assert {"REPOSITORY", "HOST", "TRITONSERVER"} <= names
    for name in names:
        assert f'"{name}"' in config_source, name
