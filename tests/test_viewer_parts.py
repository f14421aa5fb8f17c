"""The viewer's window-free parts: orbit camera, quality policy, latents, state, layout, stats."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import viewer.panel
from engine.display_mode import DisplayMode
from engine.frame import Frame, FrameRequest, rendering_for
from engine.latents import (
    BlendLatent,
    FittedLatent,
    InstanceLatent,
    LatentBank,
    LatentGaussian,
    RandomLatent,
    VolumetricTwins,
    WeightedLatent,
    cholesky_with_jitter,
    has_volumetric_twin,
)
from models.cameras import DEFAULT_FOV_DEG, Orbit, orbit_pose
from models.resolution import Resolution
from viewer.layout import PANEL_WIDTH, Layout
from viewer.orbit import ELEVATION_LIMIT, RADIUS_RANGE, OrbitCamera
from viewer.panel import ControlPanel
from viewer.quality import QualityPolicy
from viewer.state import ViewerState
from viewer.stats import FrameStats

ROOT = Path(__file__).resolve().parents[1]


def test_rotation_clamps_elevation_and_wraps_azimuth():
    camera = OrbitCamera(Orbit(azimuth=10.0, elevation=0.0))
    camera.rotate(100.0, 1e4)
    assert camera.orbit.elevation == ELEVATION_LIMIT
    assert 0.0 <= camera.orbit.azimuth < 360.0 and camera.orbit.azimuth != 10.0
    camera.rotate(0.0, -1e5)
    assert camera.orbit.elevation == -ELEVATION_LIMIT
    assert torch.isfinite(camera.orbit.cam2world()).all()


def test_zoom_clamps_radius_and_reset_goes_home():
    home = Orbit()
    camera = OrbitCamera(home)
    camera.zoom(100)
    assert camera.orbit.radius == RADIUS_RANGE[0]
    camera.zoom(-1000)
    assert camera.orbit.radius == RADIUS_RANGE[1]
    camera.pan(10, 10, 100)
    camera.reset()
    assert camera.orbit == home


def test_pan_moves_the_target_across_the_view_by_what_the_view_shows():
    camera = OrbitCamera(Orbit())
    forward = orbit_pose(camera.orbit.azimuth, camera.orbit.elevation)[:3, 2]
    view_height = 500.0
    camera.pan(view_height, 0.0, view_height)  # drag across the whole view height, sideways
    shift = torch.tensor(camera.orbit.target)
    visible = 2 * camera.orbit.radius * math.tan(math.radians(DEFAULT_FOV_DEG) / 2)
    assert float(shift.norm()) == pytest.approx(visible, rel=1e-5)
    assert abs(float(shift @ forward)) < 1e-5  # in the image plane: the distance is unchanged


def test_quality_is_coarse_while_moving_and_full_at_rest():
    policy = QualityPolicy(moving_res=64, rest_delay_s=0.25)
    policy.changed(10.0)
    assert policy.resolution(256, 10.1) == 64
    assert policy.resolution(32, 10.1) == 32  # never above the request
    assert policy.resolution(256, 10.3) == 256


def test_quality_adapts_the_moving_resolution_to_the_budget():
    policy = QualityPolicy(moving_res=64, min_res=16, budget_ms=50.0)
    policy.observe(64, 500.0, 256)  # the first frame of a size (tracing) says nothing
    assert policy.moving_res == 64
    policy.observe(64, 500.0, 256)
    assert policy.moving_res == 32
    policy.observe(256, 1.0, 256)  # a rest frame of another size: ignored
    assert policy.moving_res == 32
    policy.observe(32, 1.0, 256)
    policy.observe(32, 1.0, 256)
    assert policy.moving_res == 64
    for _ in range(10):
        policy.observe(policy.moving_res, 1.0, 128)
    assert policy.moving_res == 128  # fast enough: full resolution even while moving


def test_cholesky_jitter_handles_a_singular_covariance():
    table = torch.randn(3, 8, dtype=torch.float64)  # 3 codes in 8-D: rank 2
    centered = table - table.mean(0)
    cov = centered.T @ centered / 2
    factor = cholesky_with_jitter(cov)
    assert torch.allclose(factor @ factor.T, cov, atol=1e-4)


def test_gaussian_matches_the_table_and_is_seeded():
    torch.manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.0, -1.0, 0.5]])
    table = torch.randn(4000, 3) @ mixing.T + torch.tensor([1.0, -2.0, 0.5])
    gaussian = LatentGaussian(table)
    assert torch.equal(gaussian.sample(7), gaussian.sample(7))
    samples = torch.stack([gaussian.sample(seed) for seed in range(3000)]).double()
    assert torch.allclose(samples.mean(0), table.double().mean(0), atol=0.15)
    assert torch.allclose(samples.T.cov(), table.double().T.cov(), atol=0.3)


def test_latent_bank_resolves_each_selection():
    table = torch.randn(3, 5)
    bank = LatentBank(table, ["a", "b", "c"])
    assert torch.equal(bank.latent(InstanceLatent(2)), table[2])
    assert torch.allclose(bank.latent(BlendLatent(0, 1, 0.0)), table[0])
    assert torch.allclose(bank.latent(BlendLatent(0, 1, 1.0)), table[1])
    assert torch.allclose(bank.latent(BlendLatent(0, 1, 0.5)), (table[0] + table[1]) / 2)
    assert torch.equal(bank.latent(RandomLatent(3)), bank.gaussian.sample(3))
    assert not torch.equal(bank.latent(RandomLatent(3)), bank.latent(RandomLatent(4)))
    assert torch.allclose(bank.latent(FittedLatent(1, "fit", 2, 0.0)), table.mean(0))  # before a fit
    fitted = torch.randn(5)
    bank.publish(fitted)
    assert torch.allclose(bank.latent(FittedLatent(2, "fit", 2, 0.0)), fitted)
    assert torch.allclose(bank.latent(FittedLatent(2, "fit", 2, 0.25)), torch.lerp(fitted, table[2], 0.25))
    with pytest.raises(TypeError, match="not a latent selection"):
        bank.latent(("instance", 2))  # the old tuples are not selections


def test_latent_bank_mixes_modulation_offsets_as_it_mixes_latents():
    offset = torch.randn(8)
    bank = LatentBank(torch.randn(3, 5), ["a", "b", "c"], {2: offset})
    assert bank.offset(InstanceLatent(0)) is None and bank.offset(RandomLatent(1)) is None
    assert torch.equal(bank.offset(InstanceLatent(2)), offset)
    assert bank.offset(BlendLatent(0, 1, 0.5)) is None  # rows without one: the plain path
    assert torch.allclose(bank.offset(BlendLatent(0, 2, 0.25)), 0.25 * offset)  # a row without: zero
    assert torch.allclose(bank.offset(WeightedLatent(((2, 0.5), (1, 0.5)))), 0.5 * offset)
    assert bank.offset(FittedLatent(1, "fit", 0, 0.0)) is None  # before a fit, and a latent-only fit
    fitted = torch.randn(8)
    bank.publish(torch.randn(5), fitted)
    assert torch.equal(bank.offset(FittedLatent(2, "fit", 0, 0.0)), fitted)
    assert torch.allclose(bank.offset(FittedLatent(2, "fit", 2, 0.5)), (fitted + offset) / 2)
    bank.publish(torch.randn(5))  # a new fit without one drops the old fit's offset
    assert bank.offset(FittedLatent(3, "fit", 0, 0.0)) is None


def test_latent_labels_name_each_selection():
    bank = LatentBank(torch.randn(3, 5), ["a", "b", "c"])
    assert bank.label(InstanceLatent(1)) == "b"
    assert bank.label(BlendLatent(0, 2, 0.25)) == "a->c t=0.25"
    assert bank.label(RandomLatent(7)) == "random #7"
    assert bank.label(FittedLatent(3, "car fit step 9", 1, 0.0)) == "car fit step 9"
    assert bank.label(FittedLatent(3, "car fit step 9", 1, 0.5)) == "car fit step 9->b t=0.50"


def test_equal_selections_are_one_key_and_only_table_codes_have_twins():
    assert BlendLatent(0, 1, 0.5) == BlendLatent(0, 1, 0.5)
    assert hash(BlendLatent(0, 1, 0.5)) == hash(BlendLatent(0, 1, 0.5))
    assert len({InstanceLatent(1), InstanceLatent(1), RandomLatent(1), FittedLatent(1, "x", 0, 0.0)}) == 3
    assert InstanceLatent(1) != RandomLatent(1)  # same number, another kind of code
    assert [has_volumetric_twin(s) for s in (InstanceLatent(0), BlendLatent(0, 1, 0.5),
                                             RandomLatent(0), FittedLatent(1, "x", 0, 0.0))] == \
        [True, True, False, False]



def test_volumetric_twins_match_cars_by_name_in_any_order():
    # the LFN holds more cars than the baseline, in another order
    twins = VolumetricTwins(["b", "extra", "a", "c"], ["a", "b", "c"])
    assert twins.shared() == 3 and [twins.row(i) for i in range(4)] == [1, None, 0, 2]
    assert twins.twin(InstanceLatent(0)) == InstanceLatent(1)
    assert twins.twin(BlendLatent(2, 3, 0.25)) == BlendLatent(0, 2, 0.25)
    assert twins.twin(WeightedLatent(((3, 0.5), (0, 0.5)))) == WeightedLatent(((2, 0.5), (1, 0.5)))
    for lacking in (InstanceLatent(1), BlendLatent(0, 1, 0.5), WeightedLatent(((1, 0.2), (1, 0.8)))):
        assert twins.twin(lacking) is None and twins.missing(lacking) == ["extra"]
    for code in (RandomLatent(0), FittedLatent(1, "x", 0, 0.0)):
        assert twins.twin(code) is None and twins.missing(code) == []
    assert VolumetricTwins(["a", "b"], ["x", "y"]).shared() == 0


def test_the_compare_panel_names_the_car_the_volumetric_checkpoint_lacks(monkeypatch):
    lines = []
    for draw in ("text", "text_wrapped"):
        monkeypatch.setattr(viewer.panel.imgui, draw, lambda text: lines.append(text))
    monkeypatch.setattr(viewer.panel.imgui, "text_colored", lambda _color, text: lines.append(text))
    monkeypatch.setattr(viewer.panel.imgui, "push_style_color", lambda *_: None)
    monkeypatch.setattr(viewer.panel.imgui, "pop_style_color", lambda *_: None)
    cars = ["b", "extra", "a"]
    panel = ControlPanel(cars, Resolution.square(64), VolumetricTwins(cars, ["a", "b"]))
    count = "volumetric twins: 2 of 3 cars"
    lacking = "extra is not in the volumetric checkpoint: the LFN alone."
    for selection, notes in ((InstanceLatent(0), [count]), (BlendLatent(0, 1, 0.5), [lacking, count]),
                             (RandomLatent(3), ["A random latent has no volumetric twin.", count])):
        lines.clear()
        panel._twin_notes(selection)
        assert lines == notes

def test_state_selections_and_instance_steps():
    state = ViewerState(num_instances=3)
    assert state.latent_selection() == InstanceLatent(0)
    state.step_instance(-1)
    assert state.latent_selection() == InstanceLatent(2)
    state.latent_source, state.mix_a, state.mix_b, state.mix_t = BlendLatent, 0, 1, 0.30001
    assert state.latent_selection() == BlendLatent(0, 1, 0.3)  # a still slider is one selection
    state.latent_source, state.random_seed = RandomLatent, 4
    assert state.latent_selection() == RandomLatent(4)
    state.latent_source, state.fitted_serial, state.fitted_label = FittedLatent, 2, "fit step 3"
    state.fit_target, state.fit_t = 1, 0.5
    assert state.latent_selection() == FittedLatent(2, "fit step 3", 1, 0.5)
    state.step_instance(1)
    assert state.latent_selection() == InstanceLatent(0)


def test_a_state_frame_request_is_the_view_key_and_a_coarse_frame_keeps_its_aspect():
    state = ViewerState(num_instances=3, res=Resolution(320, 160))
    view = Orbit(azimuth=30.0)
    key = state.frame_request(view)
    assert key == FrameRequest(view, Resolution(320, 160), DisplayMode.RGB, InstanceLatent(0))
    assert state.frame_request(view, 80) == FrameRequest(view, Resolution(160, 80), DisplayMode.RGB,
                                                         InstanceLatent(0))
    for change in ({"mode": DisplayMode.DEPTH}, {"summed_depth": True}, {"stereo_depth": True},
                   {"instance": 1}, {"res": Resolution.square(256)}):
        changed = ViewerState(num_instances=3, **{"res": Resolution(320, 160), **change})
        assert changed.frame_request(view) != key, change  # each field is part of the view
    assert state.frame_request(Orbit(azimuth=31.0)) != key


@pytest.mark.parametrize("name", ["rgb", "depth", "normals"])  # main.py's --mode choices
def test_display_mode_round_trips_from_the_command_line_names(name):
    mode = DisplayMode(name)
    assert mode.value == name and DisplayMode(mode.value) is mode
    assert mode.uses_depth == (name != "rgb")


def test_display_modes_have_labels_in_shortcut_order():
    assert [m.label for m in DisplayMode] == ["RGB", "gradient depth", "normals", "LFN vs volumetric"]
    with pytest.raises(ValueError):
        DisplayMode("difference")  # a shader mode of compare's third pane, not a display mode


@pytest.mark.parametrize("size", [(1280, 800), (300, 1000), (192, 128), (3, 1)])
def test_layout_keeps_the_panel_to_a_third_and_squares_in_the_view(size):
    layout = Layout(*size, (1.0, 1.0))
    assert layout.panel <= min(PANEL_WIDTH, size[0] / 3)
    for count in (1, 3):
        squares = layout.pictures(count)
        assert len(squares) == count
        for x, y, w, h in squares:
            assert w == h >= 0 and x >= layout.panel and x + w <= size[0] and y + h <= size[1]


@pytest.mark.parametrize("size", [(1280, 800), (300, 1000), (1762, 800)])
@pytest.mark.parametrize("aspect", [16 / 9, 0.5])
def test_layout_draws_pictures_at_their_aspect_in_the_view(size, aspect):
    layout = Layout(*size, (1.0, 1.0))
    for count in (1, 3):
        pictures = layout.pictures(count, aspect)
        for x, y, w, h in pictures:
            assert x >= layout.panel and x + w <= size[0] and y + h <= size[1]
            assert w / h == pytest.approx(aspect, abs=1 / h)  # whole units: within a unit's rounding
        _, _, w, h = pictures[0]
        _, _, view_w, view_h = layout.view
        assert h == view_h or abs(w - view_w // count) <= 1  # as large as fit


def test_the_panel_offers_the_requested_aspect_at_each_size():
    panel = ControlPanel(["a"], Resolution(1920, 1080))
    assert panel.res_choices[-1] == Resolution(1920, 1080)
    assert Resolution(114, 64) in panel.res_choices and Resolution(910, 512) in panel.res_choices
    assert all(r.aspect == pytest.approx(16 / 9, rel=0.02) for r in panel.res_choices)
    squares = ControlPanel(["a"], Resolution.square(256)).res_choices
    assert squares == [Resolution.square(side) for side in (32, 64, 128, 256, 512, 1024)]


def test_layout_viewport_is_in_framebuffer_pixels_from_the_bottom():
    layout = Layout(400, 300, (2.0, 2.0))  # HiDPI: 2 framebuffer pixels per window unit
    assert layout.gl_viewport((100, 0, 50, 50)) == (200, 500, 100, 100)


def test_stats_summary_has_the_documented_fields(tmp_path):
    stats = FrameStats()
    for ms in (16.0, 17.0, 15.0):
        stats.ui_frame(ms)
    stats.rendered(64, 5.0)
    stats.rendered(256, 40.0)
    path = tmp_path / "stats.json"
    stats.write(path, texture_path="cpu-copy")
    summary = json.loads(path.read_text())
    assert summary["frames"] == 3 and summary["render_ms_median"] == 22.5
    assert (summary["render_res_min"], summary["render_res_max"]) == (64, 256)
    assert summary["texture_path"] == "cpu-copy" and summary["ui_fps"] > 0
    assert stats.fps() == pytest.approx(1000 / 16)


def test_stats_keep_the_slowest_frames_with_where_their_time_went():
    stats = FrameStats()
    stats.phase("pace")  # the loop's first mark
    for pause_s in (0.0, 0.03, 0.0, 0.0, 0.0, 0.0):
        time.sleep(0.001)
        stats.phase("events")
        time.sleep(pause_s)
        stats.phase("screenshot")
        stats.ui_frame(1000.0 * pause_s + 1.0, ("benchmark",) if pause_s else ())
    assert len(stats.slowest) == 5 and stats.slowest[0].ms == 31.0
    assert stats.slowest[0].beside == ("benchmark",) and stats.slowest[1].beside == ()
    assert stats.slowest[0].phases_ms["screenshot"] >= 29.0  # the stall is named
    assert stats.slowest[0].phases_ms["events"] < 20.0
    assert stats.summary()["ui_frames_slowest"][0]["ms"] == 31.0


def test_a_slow_frame_names_the_garbage_collections_in_it():
    stats = FrameStats()
    stats.watch_collections()
    try:
        stats.ui_frame(1.0)
        start = time.perf_counter()
        gc.collect()  # a full collection, here on this thread (any thread's counts: it holds the GIL)
        stats.ui_frame(1000.0 * (time.perf_counter() - start) + 1.0)
    finally:
        stats.close()
    assert gc.callbacks.count(stats.collections) == 0
    slowest = stats.slowest[0]
    assert any(c.startswith("gen2 ") and c.endswith("on MainThread") for c in slowest.collections)
    assert stats.slowest[1].collections == ()
    summary = stats.summary()
    assert summary["gc_full_collections"] >= 1 and summary["gc_full_ms_max"] > 0


def test_rendering_for_counts_while_the_shown_frame_is_an_older_request():
    older = FrameRequest(Orbit(azimuth=10.0), 64, DisplayMode.RGB, InstanceLatent(0))
    newer = FrameRequest(Orbit(azimuth=20.0), 512, DisplayMode.DEPTH, InstanceLatent(0))
    shown = Frame(older, torch.zeros(64, 64, 4))
    assert rendering_for(None, 0.0, None, 5.0) is None  # nothing asked for yet
    assert rendering_for(newer, 2.0, None, 5.0) == pytest.approx(3.0)  # no frame yet
    assert rendering_for(newer, 2.0, shown, 5.5) == pytest.approx(3.5)
    assert rendering_for(older, 2.0, shown, 5.5) is None  # what was asked for is on screen


# engine.memory.freeze_startup_heap in a process of its own: it freezes the whole heap
FREEZE_PROBE = """
import gc, weakref
from engine.memory import freeze_startup_heap

class Node:
    pass

def garbage_cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)

made_before = garbage_cycle()
freeze_startup_heap()
made_after = garbage_cycle()
gc.collect()
print(made_before() is None, made_after() is None, gc.get_freeze_count() > 1000)
"""


def test_the_startup_heap_is_frozen_without_its_garbage_and_later_cycles_are_still_collected():
    result = subprocess.run([sys.executable, "-c", FREEZE_PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split() == ["True", "True", "True"], result.stderr[-2000:]


def test_the_frame_line_names_what_a_frame_of_the_mode_costs():
    from viewer.panel import frame_cost

    state = ViewerState(num_instances=3)
    assert frame_cost(state, 1) == "1 eval/ray"
    state.mode = DisplayMode.NORMALS
    assert frame_cost(state, 1) == "1 eval/ray + derivatives"
    state.stereo_depth = True
    assert frame_cost(state, 1) == "refined: +400 evals/px"
    state.mode = DisplayMode.RGB  # the refine box is for depth and normals only
    assert frame_cost(state, 1) == "1 eval/ray"
