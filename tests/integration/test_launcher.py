"""The launcher against the real tritonserver binary (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.launcher import TritonLauncher, TritonLaunchError

pytestmark = pytest.mark.integration


def test_a_missing_model_fails_start_with_the_log_tail(tmp_path: Path) -> None:
    launcher = TritonLauncher(tmp_path, ["absent"])
    with pytest.raises(TritonLaunchError) as raised:
        launcher.start(timeout_s=60)
    message = str(raised.value)
    assert "absent" in message
    assert "last log lines" in message
    assert not launcher.running
