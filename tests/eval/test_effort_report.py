"""The per-setting reasoning report: s1's Control, Scaling and Performance, the table and the plot."""

from __future__ import annotations

import json

import pytest

from valley3.eval.effort_report import SettingResult, markdown, scaling, summary, write_reasoning_report


def _results() -> list[SettingResult]:
    return [SettingResult("high@10", "high", 10, [4, 10, 12], [True] * 3, [True, True, False], {"a": 0.2, "b": 0.5}),
            SettingResult("high@50", "high", 50, [40, 50, 60], [True] * 3, [True] * 3, {"a": 0.6, "b": 0.5}),
            SettingResult("high@90", "high", 90, [80, 90, 100], [True] * 3, [True] * 3, {"a": 0.7, "b": 0.2})]


def test_scaling_is_the_mean_pairwise_slope():
    # slopes in score points (x100) per 100 thinking tokens: 50, 30 and 10
    assert scaling([(0, 0.0), (100, 0.5), (200, 0.6)]) == pytest.approx((50 + 30 + 10) / 3)
    assert scaling([(10, 0.1), (10, 0.9)]) is None  # equal thinking: no slope
    assert scaling([(50, 0.5)]) is None


def test_summary_control_performance():
    s = summary(_results())
    # within the cap: 2/3, 2/3, 2/3 -> 6/9
    assert s["a"]["control"] == pytest.approx(6 / 9) and s["a"]["performance"] == pytest.approx(70)
    means = [26 / 3, 50, 90]
    want = [100 * (0.6 - 0.2) / ((means[1] - means[0]) / 100), 100 * (0.7 - 0.2) / ((means[2] - means[0]) / 100),
            100 * (0.7 - 0.6) / ((means[2] - means[1]) / 100)]
    assert s["a"]["scaling"] == pytest.approx(sum(want) / 3)
    assert s["b"]["scaling"] < 0 < s["a"]["scaling"]
    assert SettingResult("x", None, None, [1, 2]).control is None


def test_report_files(tmp_path):
    paths = write_reasoning_report(_results(), tmp_path)
    table = paths["md"].read_text()
    assert "| high@50 | high | 50 | 3 | 50.0 | 50.0 | 5.00 | 100.0 | 100.0 | 66.7 | 60.0 | 50.0 |" in table
    assert "| all | | | 9 | 49.6 | 50.0 | | 100.0 | 88.9 | |" in table
    assert "| a | 66.7 |" in table and table == markdown(_results()) + "\n"
    data = json.loads(paths["json"].read_text())
    assert [s["name"] for s in data["settings"]] == ["high@10", "high@50", "high@90"] and set(data["s1"]) == {"a", "b"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
