"""The march with fixed sizes and no host sync (march_static in models/occupancy.py, StaticMarcher)."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import models.static_marcher
from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.folded_field import FoldedField
from models.occupancy import (
    CPU_SCHEDULE,
    EARLY_STOP_TRANSMITTANCE,
    GPU_SCHEDULE,
    MarchCapacity,
    MarchSchedule,
    OccupancyGrid,
    build_occupancy,
    march,
    march_static,
)
from models.renderer import VolumetricRenderer, frame_rays
from models.resolution import Resolution
from models.static_marcher import StaticMarcher
from tests.conftest import tiny_volumetric

CPU = torch.device("cpu")
SHIPPED_VOLUMETRIC = Path(__file__).resolve().parents[1] / "checkpoints" / "cars_volumetric.pt"
FIELDS = ("color", "depth", "opacity", "evaluations")
SCHEDULE = GPU_SCHEDULE  # the static marcher's on CUDA, where the renderer uses it


def assert_same_frame(result, expected):
    for name in FIELDS:
        assert torch.equal(getattr(result, name), getattr(expected, name)), name
    assert result.rounds == expected.rounds


def rays(azimuth: float, res: int):
    return frame_rays(orbit_pose(azimuth, 20.0, 3.0), Resolution.square(res), CPU)


@pytest.fixture(scope="module")
def shipped_field():
    """The shipped checkpoint's first car: (its folded field, samples, 64³ grid), fp32."""
    ckpt = load_checkpoint(SHIPPED_VOLUMETRIC)
    renderer = VolumetricRenderer(ckpt.model, CPU, sampling="accelerated", occupancy_res=64)
    renderer.set_latent(ckpt.latents[0])
    renderer.render(orbit_pose(0.0, 20.0, 3.0), Resolution.square(4))  # builds the grid
    cfg = renderer.model.config
    assert renderer.marcher is None  # a CPU marches with march()
    return renderer.field, cfg.samples_per_ray, renderer.grid


def test_a_static_march_is_the_dynamic_one_bit_for_bit_on_the_shipped_car(shipped_field):
    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=SCHEDULE)
    # The first frame plans the capacity, the next views fit it; a far view may not (then it is
    # marched again), but every frame is the dynamic one's.
    for frame, azimuth in enumerate((0.0, 0.0, 5.0, 10.0, 120.0)):
        origins, dirs = rays(azimuth, 40)
        expected = march(origins, dirs, *shipped_field, SCHEDULE)
        assert expected.rounds >= 3 and expected.evaluations.sum() > 0
        assert_same_frame(marcher(origins, dirs), expected)
        if frame < 4:
            assert marcher.fallbacks == 1
    assert not marcher.captures


def test_static_marches_of_other_schedules_equal_the_dynamic_ones():
    model = tiny_volumetric()
    tensors = tuple(t.detach() for t in model.specialize(model.latents.weight[1]))
    folded = FoldedField(tensors, model.config.frequencies)
    field = (folded, model.config.samples_per_ray)
    grid = build_occupancy(folded.density, 8, CPU)
    origins, dirs = rays(40.0, 12)
    for rounds in ((1,), (8, 8, 64), (model.config.samples_per_ray,)):
        schedule = MarchSchedule(rounds, CPU_SCHEDULE.stop_slack)
        expected = march(origins, dirs, *field, grid, schedule)
        static = march_static(origins, dirs, *field, grid, MarchCapacity.covering(expected.demand, schedule))
        demand = static.read_demand()
        extra = (0,) * (len(demand.rays) - len(expected.demand.rays))  # rounds when no ray marched
        assert extra and demand == replace(expected.demand, rays=expected.demand.rays + extra,
                                           evaluations=expected.demand.evaluations + extra)
        result = static.result(demand)
        if rounds == (1,):  # rounds of a few evaluations: the BLAS may sum a batch of 3 otherwise than of 300
            assert torch.equal(result.evaluations, expected.evaluations)
            for name in ("color", "opacity", "depth"):
                assert torch.allclose(getattr(result, name), getattr(expected, name), rtol=0, atol=1e-6)
        else:
            assert_same_frame(result, expected)


def test_a_frame_whose_lists_overflow_is_detected_and_marched_again(shipped_field):
    origins, dirs = rays(0.0, 32)
    expected = march(origins, dirs, *shipped_field, SCHEDULE)
    fitting = MarchCapacity.covering(expected.demand, SCHEDULE)
    short = expected.rounds - 1  # a round fewer than the rays take: some cannot finish
    for too_small in (replace(fitting, samples=expected.demand.samples - 1),
                      replace(fitting, blocks=expected.demand.blocks - 1),
                      replace(fitting, sizes=fitting.sizes[:short], rays=fitting.rays[:short],
                              evaluations=fitting.evaluations[:short]),
                      replace(fitting, dilation=expected.demand.dilation - 1)):
        static = march_static(origins, dirs, *shipped_field, too_small)
        assert not too_small.holds(static.read_demand())
        marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=SCHEDULE)
        marcher.capacities[(origins.shape[0], origins.dtype)] = too_small
        assert_same_frame(marcher(origins, dirs), expected)  # marched again by march()
        grown = marcher.capacities[(origins.shape[0], origins.dtype)]
        assert marcher.fallbacks == 1 and grown.fits(expected.demand)
        assert_same_frame(marcher(origins, dirs), expected)  # and the next frame fits
        assert marcher.fallbacks == 1


def test_a_round_short_of_room_leaves_the_rest_to_later_rounds(shipped_field):
    # the CPU's schedule of many small rounds, so that later rounds have the room to take what a
    # crowded one left (the GPU's few large rounds leave none, and the frame falls back)
    many = CPU_SCHEDULE
    origins, dirs = rays(0.0, 32)
    expected = march(origins, dirs, *shipped_field, many)
    fitting = MarchCapacity.covering(expected.demand, many)
    for crowded in (replace(fitting, rays=(expected.demand.rays[0] // 2, *fitting.rays[1:])),
                    replace(fitting, evaluations=(*fitting.evaluations[:2], 10, *fitting.evaluations[3:]))):
        marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=many)
        marcher.capacities[(origins.shape[0], origins.dtype)] = crowded
        result = marcher(origins, dirs)
        assert marcher.fallbacks == 0 and marcher.deferred == 1  # right, though not march()'s bit for bit
        assert not torch.equal(result.evaluations, expected.evaluations)
        # a ray may stop a sample or so elsewhere: what lies behind is under the early-stop transmittance
        assert (result.color - expected.color).abs().max() <= EARLY_STOP_TRANSMITTANCE + 1e-5
        assert (result.opacity - expected.opacity).abs().max() <= EARLY_STOP_TRANSMITTANCE + 1e-5
        assert result.evaluations.sum() <= expected.evaluations.sum() * 1.1


def test_an_empty_grid_marches_nothing_in_a_static_march():
    model = tiny_volumetric()
    tensors = tuple(t.detach() for t in model.specialize(model.latents.weight[1]))
    field = (FoldedField(tensors, model.config.frequencies), model.config.samples_per_ray,
             OccupancyGrid(torch.zeros(8, 8, 8, dtype=torch.bool)))
    origins, dirs = rays(40.0, 8)
    marcher = StaticMarcher(*field, graphs=False, choose_faster=False, schedule=SCHEDULE)
    marcher(origins, dirs)
    result = marcher(origins, dirs)
    assert marcher.fallbacks == 1 and result.rounds == 0 and result.evaluations.sum() == 0
    assert torch.equal(result.color, torch.ones_like(result.color))


def test_graphs_are_refused_on_a_cpu():
    model = tiny_volumetric()
    tensors = tuple(t.detach() for t in model.specialize(model.latents.weight[1]))
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        StaticMarcher(FoldedField(tensors, model.config.frequencies), model.config.samples_per_ray,
                      OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool)), graphs=True, choose_faster=True,
                      schedule=GPU_SCHEDULE)


def test_a_refused_capture_leaves_the_march_eager_and_right(shipped_field, monkeypatch):
    def refuse(step):
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(models.static_marcher, "capture", refuse)
    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=SCHEDULE)
    marcher.graphs = True  # as on CUDA, whose capture this CPU cannot try
    origins, dirs = rays(0.0, 24)
    expected = march(origins, dirs, *shipped_field, SCHEDULE)
    assert_same_frame(marcher(origins, dirs), expected)  # plans the capacity
    with pytest.warns(UserWarning, match="capture failed"):
        assert_same_frame(marcher(origins, dirs), expected)
    assert not marcher.graphs and "stream is capturing" in marcher.graph_error
    assert marcher.fallbacks == 1 and not marcher.captures


def test_a_static_march_that_fails_leaves_every_frame_to_march(shipped_field, monkeypatch):
    def unsupported(*args, **kwargs):
        raise NotImplementedError("aten::nonzero_static is not implemented for this backend")

    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=SCHEDULE)
    origins, dirs = rays(0.0, 24)
    expected = march(origins, dirs, *shipped_field, SCHEDULE)
    assert_same_frame(marcher(origins, dirs), expected)  # plans the capacity
    monkeypatch.setattr(models.static_marcher, "march_static", unsupported)
    with pytest.warns(UserWarning, match="static march is given up"):
        assert_same_frame(marcher(origins, dirs), expected)
    assert_same_frame(marcher(origins, dirs), expected)  # no second warning, no second try
    assert "not implemented" in marcher.static_error and marcher.fallbacks == 3


class ReplayedStep:
    """Stands in for a CUDA graph on a CPU: a replay runs the captured step again into the same
    output tensors, as a graph rewrites its static outputs."""

    def __init__(self, step):
        self.step, self.output = step, step()

    def replay(self):
        fresh = self.step()
        for name in ("color", "depth", "opacity", "evaluations", "demand"):
            getattr(self.output, name).copy_(getattr(fresh, name))


def test_replays_read_each_frames_rays_and_keep_only_the_latest_graphs(shipped_field, monkeypatch):
    def fake_capture(step):
        graph = ReplayedStep(step)
        return graph, graph.output

    monkeypatch.setattr(models.static_marcher, "capture", fake_capture)
    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=False, schedule=SCHEDULE)
    marcher.graphs = True  # as on CUDA
    for res in (16, 20, 24):
        for azimuth in (0.0, 0.0, 3.0):  # plans, captures and replays, replays other rays
            origins, dirs = rays(azimuth, res)
            result = marcher(origins, dirs)
            assert_same_frame(result, march(origins, dirs, *shipped_field, SCHEDULE))
        kept = result.color.clone()
        marcher(*rays(0.0, res))  # the next replay rewrites the graph's output, not what was returned
        assert torch.equal(result.color, kept)
    assert marcher.fallbacks == 3 and marcher.captures == 3 and not marcher.deferred
    assert [count for count, _ in marcher.captured] == [20 * 20, 24 * 24]  # KEPT_GRAPHS, the latest


class FakeTimes:
    """Stands in for models.static_marcher.timed: runs the step and says it took `static_ms` if it was
    a static march (which returns the march and its demand), `dynamic_ms` if march()'s."""

    def __init__(self, static_ms: float, dynamic_ms: float):
        self.ms = {"static": static_ms, "dynamic": dynamic_ms}
        self.ran: list[str] = []

    def __call__(self, device, step):
        result = step()
        self.ran.append("static" if isinstance(result, tuple) else "dynamic")
        return result, self.ms[self.ran[-1]]


@pytest.mark.parametrize("static_ms, dynamic_ms, kept", [(10.0, 20.0, "static"), (30.0, 12.0, "dynamic")])
def test_each_ray_count_keeps_the_marcher_its_trial_frames_found_faster(shipped_field, monkeypatch,
                                                                        static_ms, dynamic_ms, kept):
    times = FakeTimes(static_ms, dynamic_ms)
    monkeypatch.setattr(models.static_marcher, "timed", times)
    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=True, schedule=SCHEDULE)
    origins, dirs = rays(0.0, 24)
    expected = march(origins, dirs, *shipped_field, SCHEDULE)
    for _ in range(8):
        assert_same_frame(marcher(origins, dirs), expected)
    # the planning frame, then turns, the static march first; from there on the faster, untimed
    assert times.ran == ["dynamic", "static", "static", "dynamic", "static", "dynamic"]
    assert marcher.kept == {(24 * 24, torch.float32): kept} and marcher.fallbacks == 1
    other = rays(5.0, 20)  # another ray count is tried on its own
    marcher(*other)
    assert (20 * 20, torch.float32) not in marcher.kept and times.ran[-1] == "dynamic"


def test_a_ray_count_that_keeps_march_drops_its_graph(shipped_field, monkeypatch):
    def fake_capture(step):
        graph = ReplayedStep(step)
        return graph, graph.output

    monkeypatch.setattr(models.static_marcher, "capture", fake_capture)
    times = FakeTimes(static_ms=30.0, dynamic_ms=12.0)
    monkeypatch.setattr(models.static_marcher, "timed", times)
    marcher = StaticMarcher(*shipped_field, graphs=False, choose_faster=True, schedule=SCHEDULE)
    marcher.graphs = True  # as on CUDA
    origins, dirs = rays(0.0, 24)
    for _ in range(models.static_marcher.FRAMES_TO_CHOOSE):
        marcher(origins, dirs)
    # plans, captures (its time not a frame's: a static frame more), then turns as above
    assert times.ran == ["dynamic", "static", "static", "static", "dynamic", "static", "dynamic"]
    assert marcher.trials[(24 * 24, torch.float32)].static_ms == [30.0] * 3
    assert marcher.kept == {(24 * 24, torch.float32): "dynamic"} and not marcher.captured
    monkeypatch.setattr(models.static_marcher, "march_static", lambda *args: pytest.fail("static march"))
    assert_same_frame(marcher(origins, dirs), march(origins, dirs, *shipped_field, SCHEDULE))
