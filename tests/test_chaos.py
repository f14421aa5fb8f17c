"""The chaos run (bench/chaos.py): a short one against the real window, and its verdict's checks."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from bench.chaos import (
    GROWTH_LIMIT,
    NO_MAP,
    ChaosConfig,
    Reading,
    RestReading,
    chaos_run,
    checkpoint_copy,
    judge,
    requested_size,
    running_jobs,
    title_mode_and_size,
)
from bench.chaos_prelude import PreludeStep
from engine.widget_map import Widget
from models.encoder import encoder_path
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
    # every reading is kept, and once the panel drew, each one read its jobs off the map
    assert len(report.readings) >= 25 and NO_MAP not in report.readings[-1].jobs
    # the viewer's slowest UI frames came back with where their time went
    assert report.ui_frames_slowest and "swap" in report.ui_frames_slowest[0]["phases_ms"]


def rests_every_20s(mb, seconds: int = 600, **fields) -> list[RestReading]:
    """A rest every 20 s from 70 s on, at `mb(t)` MB."""
    return [RestReading(float(t), mb(t), "RGB", settled=True, **fields) for t in range(70, seconds, 20)]


@pytest.mark.parametrize(("stderr", "exit_code", "stats", "rests", "needle"), [
    ("", 0, {"ui_frame_ms_max": 1500.0}, [], "UI frame of 1500 ms"),
    ("error: boom\n", 1, {}, [], "exit code 1"),
    ("Traceback (most recent call last):\n", 0, {"ui_frame_ms_max": 5.0}, [], "traceback"),
    ("", 0, {"ui_frame_ms_max": 5.0}, rests_every_20s(lambda t: 400.0 + 0.4 * t, 400),
     "memory at rest grew 29.9 % after 60 s (trend line through 17 rests, 428 -> 556 MB)"),
    ("", 0, {"ui_frame_ms_max": 5.0}, rests_every_20s(lambda t: 400.0)[::4],
     "too few rests to judge memory: 7 of 7 after 60 s"),
])
def test_the_verdict_fails_on_hangs_errors_and_growth(tmp_path, stderr, exit_code, stats, rests, needle):
    stats_path = tmp_path / "stats.json"
    if stats:
        stats_path.write_text(json.dumps(stats))
    memory = [Reading(float(t), 400.0, "RGB") for t in range(600)]
    report = judge(Counter(drag=3), memory, stderr, exit_code, 1.0, stats_path, [], (), rests)
    assert any(needle in failure for failure in report.failures), report.failures


def judged(memory: list[Reading], rests: list[RestReading], tmp_path, prelude=()):
    stats_path = tmp_path / "stats.json"
    stats_path.write_text(json.dumps({"ui_frame_ms_max": 40.0}))
    return judge(Counter(key=5), memory, "", 0, 1.0, stats_path, [], prelude, rests)


def test_working_memory_between_rests_is_not_growth(tmp_path):
    # between rests a depth frame's working memory comes and goes (400 MB in RGB, 800 MB in depth),
    # and depth gets more of the screen late in the run: lines through those readings rise
    memory = [Reading(float(t), 800.0, "depth") if t % 10 < t // 60 + 2 else Reading(float(t), 400.0, "RGB")
              for t in range(600)]
    report = judged(memory, rests_every_20s(lambda t: 390.0), tmp_path)
    assert report.failures == [] and abs(report.rss_growth) < 1e-9 and report.judged_rests == 27
    assert report.rss_growth_all_readings > 0.2  # reported, not judged


def test_a_leak_shows_at_rest_and_fails(tmp_path):
    # 0.2 MB a second kept: the rests rise with it, whatever swings between them
    memory = [Reading(float(t), 800.0 + 0.2 * t if (t // 20) % 2 else 400.0, "RGB") for t in range(600)]
    report = judged(memory, rests_every_20s(lambda t: 390.0 + 0.2 * t), tmp_path)
    assert report.rss_growth == pytest.approx(104.0 / 404.0)
    assert any("memory at rest grew" in failure for failure in report.failures), report.failures


def test_memory_is_judged_after_the_prelude_where_it_ends_after_the_first_minute(tmp_path):
    prelude = [PreludeStep("benchmark", 2.0, 20.0, True, "started"),
               PreludeStep("background jobs ended", 90.0, 110.0, True, "ended")]
    memory = [Reading(float(t), 500.0, "RGB") for t in range(600)]
    # flat at 500 MB but for a one-time step of 150 MB at 100 s: a first use, not growth
    rests = [RestReading(float(t), 500.0 + (150.0 if t >= 100 else 0.0), "RGB", settled=True)
             for t in range(70, 600, 20)]
    after = judged(memory, rests, tmp_path, prelude)
    assert after.judged_from_s == 110.0 and after.failures == []
    assert abs(after.rss_growth) < 1e-9 and after.rss_mb_judged_start == 650.0
    # without the prelude the same step lands in the judged window and fails the run
    within = judged(memory, rests, tmp_path)
    assert within.judged_from_s == 60.0
    assert any("memory at rest grew" in failure and "after 60 s" in failure for failure in within.failures)


def test_a_failed_prelude_step_fails_the_run(tmp_path):
    prelude = [PreludeStep("display modes", 0.0, 240.0, False, "no a normals frame within 240 s")]
    report = judge(Counter(key=5), [], "", 0, 1.0, tmp_path / "none.json", [], prelude)
    assert "prelude step 'display modes' failed: no a normals frame within 240 s" in report.failures


def test_rests_with_a_job_running_or_a_frame_not_settled_are_kept_not_judged(tmp_path):
    memory = [Reading(float(t), 600.0, "RGB") for t in range(600)]
    rests = rests_every_20s(lambda t: 600.0)
    late = [RestReading(float(t), 950.0, "RGB", jobs=("benchmark",), settled=True)
            for t in range(80, 600, 20)]
    unsettled = [RestReading(float(t), 1000.0, "gradient depth", res="32") for t in range(85, 600, 20)]
    report = judged(memory, sorted([*rests, *late, *unsettled], key=lambda r: r.seconds), tmp_path)
    assert report.failures == [] and abs(report.rss_growth) < 1e-9
    assert report.judged_rests == len(rests) and len(report.rests) == len(rests) + len(late) + len(unsettled)


def test_the_title_and_the_resolution_combo_name_sizes_alike():
    title = "LFN viewer - one - gradient depth - 256x128px"
    assert title_mode_and_size(title) == ("gradient depth", "256x128")
    assert title_mode_and_size("LFN viewer") == ("?", "?")
    assert requested_size({"resolution": Widget("begin_combo", 0, 0, 9, 9, value="256 x 128")}) == "256x128"
    assert requested_size({"resolution": Widget("begin_combo", 0, 0, 9, 9, value="128 x 128")}) == "128"
    assert requested_size({}) is None


def with_jobs(seconds: int, mb: float, jobs: tuple[str, ...]) -> Reading:
    return Reading(float(seconds), mb, "RGB", jobs=jobs)


def test_lines_through_the_readings_are_reported_beside_the_verdict(tmp_path):
    # flat at 600 MB with no job; a benchmark and a fit late in the run hold 850-1000 MB while they run
    memory = [with_jobs(t, 850.0 + (t % 7) * 20, ("benchmark", "fit")) if t > 380 and t % 40 < 25
              else with_jobs(t, 600.0, ()) for t in range(600)]
    report = judged(memory, rests_every_20s(lambda t: 600.0), tmp_path)
    assert report.failures == [] and abs(report.rss_growth_by_mode["RGB"]) < 1e-9  # readings with no job
    assert report.rss_growth_all_readings > GROWTH_LIMIT
    assert report.rss_growth_by_mode_all_readings["RGB"] > GROWTH_LIMIT
    floors = {floor.minute: floor for floor in report.rss_mb_floor_by_minute}
    assert floors[9].mb == floors[9].no_job_mb == 600 and len(floors) == 10


def button(disabled: bool = False) -> Widget:
    return Widget("button", 8.0, 8.0, 99.0, 19.0, disabled)


def test_the_jobs_running_are_read_off_the_widget_map():
    idle = {"Run benchmark": button(), "backend": button(), "Record path": button(),
            "Reconstruct from a photo": button()}
    assert running_jobs(idle) == ()
    busy = {"Run benchmark": button(disabled=True), "backend": button(disabled=True),
            "Record path (exporting)": button(), "Reconstruct from a photo (fitting)": button()}
    assert running_jobs(busy) == ("benchmark", "backend switch", "video export", "fit")
    assert running_jobs({}) == (NO_MAP,)  # before the first frame: unknown, so not judged


def test_the_viewer_gets_a_copy_of_the_checkpoint_and_its_encoder_in_the_run_folder(tmp_path, tiny_ckpt):
    encoder_path(tiny_ckpt).write_bytes(b"encoder")
    folder = tmp_path / "run"
    folder.mkdir()
    copy = checkpoint_copy(tiny_ckpt, folder)
    # a fit saved beside the copy ("Save checkpoint copy") lands in the run folder, not the repository
    assert copy.parent == folder and copy.read_bytes() == tiny_ckpt.read_bytes()
    assert encoder_path(copy).read_bytes() == b"encoder"
