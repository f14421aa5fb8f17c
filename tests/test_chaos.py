"""The chaos run (bench/chaos.py): a short one against the real window, and its verdict's checks."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from bench.chaos import ChaosConfig, Reading, chaos_run, judge
from bench.chaos_prelude import PreludeStep
from tests.conftest import skip_or_fail

# The prelude's steps that take seconds with a tiny checkpoint (the benchmark, the export, the
# backends' builds and the fit take the real run's first minutes).
CI_PRELUDE = ("screenshot", "display modes", "resolution extremes")


def test_a_short_chaos_run_finds_nothing_wrong(tiny_ckpt):
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed")
    report = chaos_run(ChaosConfig(tiny_ckpt, minutes=0.5, seed=1, res=64, prelude=CI_PRELUDE),
                       progress=lambda _: None)
    assert report.failures == [], report
    # the prelude's cheap steps ran first, found their widgets by label and saw them act
    assert [step.name for step in report.prelude] == list(CI_PRELUDE)
    assert all(step.ok for step in report.prelude), report.prelude
    assert report.prelude[0].started_s == 0.0 and report.prelude[-1].ended_s < 20.0
    assert report.exit_code == 0 and report.events >= 40, report.prelude
    assert len(report.event_counts) >= 6  # most kinds of input were sent
    assert len(report.threads_every_5s) == len(report.rss_mb_and_mode_every_5s) == len(report.res_every_5s)
    assert "64" in report.res_every_5s  # the size the viewer was started at, read off the title
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


def stepped(prelude_ends_s: float) -> list[Reading]:
    """Flat at 500 MB but for a one-time step of 150 MB at 100 s: a first use, not growth."""
    return [Reading(float(t), 500.0 + (150.0 if t >= 100 else 0.0), "RGB") for t in range(600)]


def test_memory_is_judged_after_the_prelude_where_it_ends_after_the_first_minute(tmp_path):
    prelude = [PreludeStep("benchmark", 2.0, 20.0, True, "started"),
               PreludeStep("background jobs ended", 90.0, 110.0, True, "ended")]
    stats_path = tmp_path / "stats.json"
    stats_path.write_text(json.dumps({"ui_frame_ms_max": 40.0}))
    after = judge(Counter(key=5), stepped(110.0), "", 0, 1.0, stats_path, [], prelude)
    assert after.judged_from_s == 110.0 and after.failures == []
    assert abs(after.rss_growth) < 1e-9 and after.rss_mb_judged_start == 650.0
    # without the prelude the same step lands in the judged window and fails the run
    within = judge(Counter(key=5), stepped(110.0), "", 0, 1.0, stats_path, [])
    assert within.judged_from_s == 60.0
    assert any("memory grew" in failure and "after 60 s" in failure for failure in within.failures)


def test_a_failed_prelude_step_fails_the_run(tmp_path):
    prelude = [PreludeStep("display modes", 0.0, 240.0, False, "no a normals frame within 240 s")]
    report = judge(Counter(key=5), [], "", 0, 1.0, tmp_path / "none.json", [], prelude)
    assert "prelude step 'display modes' failed: no a normals frame within 240 s" in report.failures
