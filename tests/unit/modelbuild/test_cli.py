"""``fncall build-model`` argument handling and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.cli import main as fncall_main
from service.modelbuild import cli
from service.modelbuild.build import BuildOptions, BuildResult
from service.modelbuild.errors import BuildError


def test_bad_source_exits_1_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.gguf"
    code = fncall_main(["build-model", str(missing), "--repository", str(tmp_path / "repo")])
    assert code == 1
    assert "error: unknown model source" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


def test_arguments_reach_the_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[BuildOptions] = []

    def fake_build(options: BuildOptions, progress: object) -> BuildResult:
        seen.append(options)
        raise BuildError("stop here")

    monkeypatch.setattr(cli, "build_model", fake_build)
    argv = ["m.gguf", "--repository", str(tmp_path), "--name", "x", "--precision", "fp16"]
    argv += ["--served-name", "my-model", "--tool-dialect", "mistral", "--force"]
    assert cli.main(argv) == 1
    options = seen[0]
    assert (options.source, options.repository, options.name) == ("m.gguf", tmp_path, "x")
    assert (options.precision, options.served_name) == ("fp16", "my-model")
    assert (options.tool_dialect, options.force) == ("mistral", True)
    assert cli.main([]) == 1
    assert (seen[1].source, seen[1].precision, seen[1].name) == (
        "qwen2.5-coder-0.5b-instruct",
        "auto",
        "llm",
    )


def test_unknown_precision_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--precision", "int3"])
    assert caught.value.code == 2
