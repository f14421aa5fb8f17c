"""The chaos run (bench/chaos.py): a short one against the real window, and its verdict's checks."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from bench.chaos import ChaosConfig, Reading, chaos_run, judge
from tests.conftest import skip_or_fail


def test_a_short_chaos_run_finds_nothing_wrong(tiny_ckpt):
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed")
    report = chaos_run(ChaosConfig(tiny_ckpt, minutes=0.3, seed=1, res=64), progress=lambda _: None)
    assert report.failures == [], report
    assert report.exit_code == 0 and report.events >= 40
    assert len(report.event_counts) >= 6  # most kinds of input were sent
    assert len(report.threads_every_5s) == len(report.rss_mb_and_mode_every_5s)
    assert min(report.threads_every_5s) >= 2  # the UI's and the render thread at least


@pytest.mark.parametrize(("stderr", "exit_code", "stats", "memory", "needle"), [
    ("", 0, {"ui_frame_ms_max": 1500.0}, [], "UI frame of 1500 ms"),
    ("error: boom\n", 1, {}, [], "exit code 1"),
    ("Traceback (most recent call last):\n", 0, {"ui_frame_ms_max": 5.0}, [], "traceback"),
    ("", 0, {"ui_frame_ms_max": 5.0}, [Reading(float(t), 400.0 + 0.4 * t, "RGB") for t in range(400)],
     "memory grew 32.0 % in mode RGB"),
    ("", 0, {"ui_frame_ms_max": 5.0}, [Reading(float(t), 400.0, "RGB") for t in range(400)][::6],
     "no display mode stayed on screen long enough"),
])
def test_the_verdict_fails_on_hangs_errors_and_growth(tmp_path, stderr, exit_code, stats, memory, needle):
    stats_path = tmp_path / "stats.json"
    if stats:
        stats_path.write_text(json.dumps(stats))
    report = judge(Counter(drag=3), memory, stderr, exit_code,
                   1.0, stats_path, [])
    assert any(needle in failure for failure in report.failures), report.failures


def judged(memory: list[Reading], tmp_path):
    stats_path = tmp_path / "stats.json"
    stats_path.write_text(json.dumps({"ui_frame_ms_max": 40.0}))
    return judge(Counter(key=5), memory, "", 0, 1.0, stats_path, [])


def test_memory_swinging_with_the_mode_but_not_growing_passes(tmp_path):
    # a depth frame's working memory comes and goes: 400 MB in RGB, 800 MB in depth, in turns
    memory = [Reading(float(t), 800.0, "depth") if (t // 20) % 2 else Reading(float(t), 400.0, "RGB")
              for t in range(400)]
    report = judged(memory, tmp_path)
    assert report.failures == [] and set(report.rss_growth_by_mode) == {"RGB", "depth"}
    assert abs(report.rss_growth) < 1e-9 and abs(report.rss_growth_all_readings) < 0.02


def test_a_heavy_mode_left_on_screen_late_is_not_a_leak(tmp_path):
    # depth (800 MB) gets more of the screen time as the run goes on: a line through all
    # readings rises, while neither mode's own memory grows
    memory = [Reading(float(t), 800.0, "depth") if t % 10 < t // 60 + 2 else Reading(float(t), 400.0, "RGB")
              for t in range(600)]
    report = judged(memory, tmp_path)
    assert report.rss_growth_all_readings > 0.2
    assert report.failures == [] and abs(report.rss_growth) < 1e-9


def test_a_leak_in_one_mode_fails_naming_it(tmp_path):
    memory = [Reading(float(t), 800.0 + 0.3 * t, "depth") if (t // 20) % 2
              else Reading(float(t), 400.0, "RGB") for t in range(600)]
    report = judged(memory, tmp_path)
    assert report.rss_growth_by_mode["RGB"] == 0.0
    assert any("in mode depth" in failure for failure in report.failures), report.failures
