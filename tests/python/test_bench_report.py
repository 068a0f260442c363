"""The benchmark report's arithmetic (not the benchmarks: tests never time)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import report  # noqa: E402


def row(ratio: float, target: float | None) -> dict:
    return {"ratio": ratio, "target_ratio": target}


def test_a_ratio_that_rounds_onto_its_target_shows_a_third_decimal() -> None:
    assert report.format_ratio(row(1.998, 2.0)) == "1.998x"  # misses 2x: never "2.00x"
    assert report.format_ratio(row(2.004, 2.0)) == "2.004x"
    assert report.format_ratio(row(2.0, 2.0)) == "2.00x"
    assert report.format_ratio(row(1.994, 2.0)) == "1.99x"
    assert report.format_ratio(row(3.061, 3.0)) == "3.06x"
    assert report.format_ratio(row(105.73, None)) == "105.73x"
