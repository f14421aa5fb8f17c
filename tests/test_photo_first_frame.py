"""bench/photo_first_frame.py's reading of the viewer's --stats photo records and its verdict
and its command line (the window run itself is the benchmark; tests/test_reconstruct_window.py
drives a real drop)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.photo_first_frame import DropTiming, drop_timings, summarize, verdict


def record(name: str, arrived_s: float, first_ms: float, first_step: int = 0) -> dict:
    """A viewer/reconstruction.py PhotoTiming as --stats writes it: the start at 64 rows, two
    refinement codes, the last one again at the requested 256 rows."""
    return {"photo": name, "mode": "refine", "arrived_s": arrived_s, "loaded_ms": 1.5,
            "start_ms": 80.0, "published_ms": 90.0,
            "frames": [{"step": first_step, "rows": 64, "render_ms": 30.0, "on_screen_ms": first_ms},
                       {"step": 11, "rows": 64, "render_ms": 30.0, "on_screen_ms": first_ms + 900},
                       {"step": 20, "rows": 32, "render_ms": 9.0, "on_screen_ms": first_ms + 2000},
                       {"step": 20, "rows": 256, "render_ms": 700.0,
                        "on_screen_ms": first_ms + 2900}]}


def drops(first_ms: list[float], first_step: int = 0) -> list[DropTiming]:
    names = [f"drop{k:02d}.png" for k in range(len(first_ms))]
    photos = [record(name, 100.0 + k, first_ms[k], first_step) for k, name in enumerate(names)]
    sent = {n: 100.0 + k - 0.025 for k, n in enumerate(names)}  # 25 ms of X delivery each
    return drop_timings(photos, sent, {n: 3.5 for n in names}, requested_rows=256)


def test_a_drop_is_timed_from_its_xdnd_drop_to_each_frame_of_its_codes():
    (timing,) = drops([150.0])
    assert timing.delivery_ms == pytest.approx(25.0)
    assert timing.first_frame_total_ms == pytest.approx(175.0)
    assert (timing.first_frame_step, timing.first_frame_rows) == (0, 64)
    assert (timing.last_step, timing.last_step_ms) == (20, 2150.0)  # the first frame of step 20
    assert timing.full_res_ms == 3050.0  # step 20 at the requested resolution
    assert (timing.start_ms, timing.published_ms, timing.load_1min) == (80.0, 90.0, 3.5)


def test_median_and_max_over_the_measured_drops():
    summary = summarize(drops([100.0, 300.0, 200.0]))
    assert summary["first_frame_total_ms"].count == 3
    assert summary["first_frame_total_ms"].median_ms == pytest.approx(225.0)
    assert summary["first_frame_total_ms"].max_ms == pytest.approx(325.0)
    assert summary["full_res_ms"].median_ms == pytest.approx(3100.0)


def test_verdict_needs_every_first_frame_in_time_and_from_the_encoder():
    assert verdict(drops([300.0, 470.0])).met  # 495 ms from the drop: in time
    late = verdict(drops([300.0, 480.0]))  # 505 ms
    assert not late.met and "max 505 ms" in late.line and "1 of 2 drops later" in late.line
    refined = verdict(drops([100.0, 120.0], first_step=3))
    assert not refined.met and "already refined" in refined.line


def test_a_photo_whose_code_never_reached_the_screen_is_an_error():
    photo = record("drop00.png", 100.0, 150.0) | {"frames": []}
    with pytest.raises(ValueError, match="drop00.png: no frame"):
        drop_timings([photo], {"drop00.png": 99.9}, {"drop00.png": 1.0}, 256)


@pytest.mark.parametrize(("args", "code", "names"), [
    ("--ckpt missing.pt", 1, "--ckpt missing.pt"),
    ("--drops 3 --warmup 2", 1, "--drops 3"),
    ("--res big", 2, "--res"),
    ("--during-fit --after-orbit 0.5", 2, "--after-orbit"),
])
def test_bad_input_is_one_error_line_before_any_window(args, code, names):
    done = subprocess.run([sys.executable, "-m", "bench.photo_first_frame", *args.split()],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and names in lines[0]
