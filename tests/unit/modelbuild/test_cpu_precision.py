"""``--precision auto``: the rule, on made-up timings, and the real probe on this CPU."""

from __future__ import annotations

import pytest

from service.modelbuild import cpu_precision
from service.modelbuild.cpu_precision import BATCHES, measure, pick_precision


def timings(int8: tuple[float, float], int4: tuple[float, float]) -> dict[tuple[int, int], float]:
    return {
        **{(8, batch): seconds for batch, seconds in zip(BATCHES, int8, strict=True)},
        **{(4, batch): seconds for batch, seconds in zip(BATCHES, int4, strict=True)},
    }


@pytest.mark.parametrize(
    ("int8", "int4", "expected"),
    [
        ((1.0, 4.0), (0.7, 3.0), "int4"),  # faster at both batch sizes
        ((1.0, 4.0), (0.6, 4.4), "int4"),  # the EPYC kind: much faster at batch 1, about even at 16
        ((1.0, 4.0), (0.7, 5.2), "int8"),  # clearly slower at batch 16
        ((1.0, 4.0), (0.95, 3.0), "int8"),  # within the margin at batch 1
        ((1.0, 4.0), (2.2, 9.0), "int8"),  # the Intel Xeon kind: int4 much slower
    ],
)
def test_int4_only_where_it_is_clearly_faster_at_batch_1_and_not_slower_at_16(
    monkeypatch: pytest.MonkeyPatch, int8: tuple, int4: tuple, expected: str
) -> None:
    monkeypatch.setattr(cpu_precision, "measure", lambda: timings(int8, int4))
    said: list[str] = []
    assert pick_precision(said.append) == expected
    assert said[-1] == f"precision auto: {expected}"
    assert any("batch 16" in line for line in said)  # the timings are reported


def test_the_probe_times_both_widths_at_both_batch_sizes() -> None:
    measured = measure()
    assert set(measured) == {(bits, batch) for bits in (8, 4) for batch in BATCHES}
    assert all(0 < seconds < 1 for seconds in measured.values())
