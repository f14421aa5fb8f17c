"""A CPU frame (or EPI) renders in slices and is given up between two once a newer request of its kind
waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

import models.depth
import models.renderer
from engine.display_mode import DisplayMode
from engine.frame import EpiFrame, EpiRequest, Frame, FrameRenderer, FrameRequest, Request
from engine.latents import InstanceLatent, LatentBank
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.lfn import LFNConfig, LightFieldNetwork
from models.plucker import meets_unit_sphere, plucker
from models.renderer import CPU_SLICE_RAYS, FrameAbandoned, LFNRenderer, VolumetricRenderer, frame_rays
from models.resolution import Resolution
from tests.conftest import names, tiny_lfn, tiny_volumetric
from viewer.worker import RenderWorker

CAMERA = Orbit(azimuth=35.0, elevation=15.0).cam2world()
WIDE = Resolution(100, 75)  # 7500 rays: one full slice and a tail that is no multiple of 16


def full_size_lfn() -> LightFieldNetwork:
    """The shipped checkpoint's shape (256 wide): the matrix kernels whose rounding matters."""
    torch.manual_seed(1)
    model = LightFieldNetwork(LFNConfig(num_instances=1))
    with torch.no_grad():
        model.latents.weight.normal_(std=1.0)
    return model


def every_ray(model: LightFieldNetwork, max_rays: int | None = None) -> LFNRenderer:
    """A renderer that evaluates every ray: the worker tests count a frame's slices, which the
    unit sphere's bound would make depend on the camera."""
    return LFNRenderer(model, max_rays=max_rays, bounded=False)


def one_pass_colors(renderer: LFNRenderer, res: Resolution, chunk: int) -> torch.Tensor:
    """The colors before slicing: the rays inside the renderer's bound (the unit sphere) in chunks
    of `chunk`, each one call of the backend; the others white."""
    origins, dirs = frame_rays(CAMERA, res, renderer.device)
    rays = plucker(origins, dirs)
    inside = meets_unit_sphere(rays)
    assert 0 < inside.sum() < res.pixels  # the bound cuts the frame: the sliced rays are a subset
    evaluated = rays[inside]
    colors = torch.ones(res.pixels, 3, dtype=renderer.dtype)
    colors[inside] = torch.cat([renderer.colors(evaluated[i:i + chunk])
                                for i in range(0, evaluated.shape[0], chunk)])
    return colors.view(res.height, res.width, 3)


@pytest.mark.parametrize("model", [tiny_lfn, full_size_lfn], ids=["tiny", "full-size"])
@pytest.mark.parametrize("res", [Resolution.square(128), WIDE], ids=str)
@pytest.mark.parametrize("backend", ["torchscript", "eager"])
def test_a_frame_without_competition_is_bit_identical_to_the_unsliced_render(model, res, backend):
    renderer = LFNRenderer(model(), backend=backend)
    assert res.pixels > CPU_SLICE_RAYS  # more than one slice
    whole = one_pass_colors(renderer, res, res.pixels)
    assert torch.equal(renderer.render(CAMERA, res), whole)
    rgba = renderer.render_rgba(CAMERA, res, abandon=lambda: False)
    assert torch.equal(rgba[..., :3], whole) and bool((rgba[..., 3] == 1).all())


def test_frames_of_several_chunks_keep_their_chunks_colors():
    """A frame larger than a CPU chunk (CPU_WORKING_BYTES) was one call per chunk; its slices start
    at each chunk's start, so those colors are unchanged too."""
    chunk = 10_000  # not a multiple of the slice: the second chunk starts off the slices' grid
    renderer = LFNRenderer(full_size_lfn(), max_rays=chunk)
    res = Resolution.square(160)
    assert torch.equal(renderer.render(CAMERA, res), one_pass_colors(renderer, res, chunk))


def test_abandon_stops_the_frame_within_one_slice_and_leaves_out_untouched(monkeypatch):
    renderer = LFNRenderer(tiny_lfn())
    slices: list[int] = []
    colors = renderer.colors
    monkeypatch.setattr(renderer, "colors", lambda rays: (slices.append(rays.shape[0]), colors(rays))[1])
    out = torch.full((128, 128, 4), -1.0)
    with pytest.raises(FrameAbandoned):
        renderer.render_rgba(CAMERA, 128, out, abandon=lambda: len(slices) >= 1)
    assert slices == [CPU_SLICE_RAYS]  # 4 slices in the frame, one rendered
    assert bool((out == -1).all())  # nothing half-done reaches the caller's frame


class GatedColors:
    """A renderer's colors() (or any per-chunk call whose first argument holds the rays), recording
    each slice's ray count; the calls numbered in `holds` wait, once `reached`, until the test
    releases them: a slow frame the test steps through."""

    def __init__(self, colors, holds: tuple[int, ...]):
        self.colors, self.slices = colors, []
        self.reached = {n: threading.Event() for n in holds}
        self.release = {n: threading.Event() for n in holds}

    def __call__(self, rays: torch.Tensor, *rest):
        call = len(self.slices)
        self.slices.append(rays.shape[0])
        if call in self.reached:
            self.reached[call].set()
            assert self.release[call].wait(30)
        return self.colors(rays, *rest)

    def hold_then(self, call: int, action) -> None:
        """Wait until slice `call` has started, do `action`, then let it finish."""
        assert self.reached[call].wait(30)
        action()
        self.release[call].set()


def frames_shown_when_superseded(frames: FrameRenderer, stale: Request, gate: GatedColors,
                                 *arrivals: Request) -> list[Frame | EpiFrame]:
    """The frames and EPIs a render thread shows when `stale` is submitted and arrival k is
    submitted while the frames wait at `gate`'s held call k."""
    shown: list[Frame | EpiFrame] = []
    worker: RenderWorker | None = None

    def collect() -> None:  # on the render thread after each round: every result it published
        for kind in (FrameRequest, EpiRequest):
            done = worker.take(kind)
            if done is not None:
                shown.append(done)

    worker = RenderWorker(frames, on_done=collect)
    try:
        worker.submit(stale)
        for call, request in enumerate(arrivals):
            gate.hold_then(call, lambda request=request: worker.submit(request))
        deadline = time.monotonic() + 30
        while not worker.idle and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        assert worker.close()
    return shown


def test_the_worker_gives_up_a_stale_frame_and_never_shows_it(tiny_ckpt):
    ckpt = load_checkpoint(tiny_ckpt)
    frames = FrameRenderer(every_ray(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names))
    gate = GatedColors(frames.renderer.colors, holds=(0, 1))
    frames.renderer.colors = gate

    def request(azimuth: float, rows: int) -> FrameRequest:
        return FrameRequest(Orbit(azimuth=azimuth), rows, DisplayMode.RGB, InstanceLatent(1))

    stale, newer, newest = request(10.0, 128), request(20.0, 128), request(30.0, 32)
    # stale has 4 slices; newer renders to its end although newest arrives during it: the frame
    # after one given up is never given up, so a stream of requests still shows frames
    shown = frames_shown_when_superseded(frames, stale, gate, newer, newest)
    assert [frame.request for frame in shown] == [newer, newest]
    assert gate.slices == [CPU_SLICE_RAYS] + [CPU_SLICE_RAYS] * 4 + [32 * 32]  # stale: one slice
    frames.renderer.colors = gate.colors
    frames.renderer.set_latent(ckpt.latents[1])
    expected = frames.renderer.render(newer.orbit.cam2world(), 128)
    assert torch.equal(shown[0].image[..., :3], expected)


# A compare frame's volumetric half, as the viewer renders it (accelerated), in chunks of this many
# rays: a 24² frame is 9 chunks. A 16³ grid is one chunk of corners a stage, and marks every cell
# of the tiny model, so each chunk marches every sample.
COMPARE_RES, VOLUMETRIC_CHUNK_RAYS = 24, 64


def compare_frames(volumetric_chunk_rays: int = VOLUMETRIC_CHUNK_RAYS) -> FrameRenderer:
    lfn, volumetric = tiny_lfn(), tiny_volumetric()
    return FrameRenderer(
        every_ray(lfn), LatentBank(lfn.latents.weight, names(3)),
        VolumetricRenderer(volumetric, sampling="accelerated", occupancy_res=16,
                           max_samples=volumetric_chunk_rays * volumetric.evals_per_ray),
        LatentBank(volumetric.latents.weight, names(3)),
    )


def compare_request(azimuth: float) -> FrameRequest:
    return FrameRequest(Orbit(azimuth=azimuth), COMPARE_RES, DisplayMode.COMPARE, InstanceLatent(1))


def one_pass_reference(request: FrameRequest) -> torch.Tensor:
    """The volumetric colors of `request` from a renderer that marches the whole frame at once."""
    frames = compare_frames(volumetric_chunk_rays=1 << 20)
    frames.volumetric.set_latent(frames.volumetric_latents.latent(request.latent))
    assert frames.volumetric.rays_per_chunk >= request.res.pixels
    return frames.volumetric.render(request.orbit.cam2world(), request.res)


def test_the_worker_gives_up_a_stale_compare_frame_within_one_volumetric_chunk(monkeypatch):
    frames = compare_frames()
    marched = GatedColors(models.renderer.march, holds=(0,))
    monkeypatch.setattr(models.renderer, "march", marched)
    stale, newer = compare_request(10.0), compare_request(20.0)
    # stale's LFN half renders, then its volumetric half's first chunk waits for newer
    shown = frames_shown_when_superseded(frames, stale, marched, newer)
    chunks = COMPARE_RES * COMPARE_RES // VOLUMETRIC_CHUNK_RAYS
    # stale: the chunk in flight when newer came, no other; newer: every chunk
    assert marched.slices == [VOLUMETRIC_CHUNK_RAYS] * (1 + chunks)
    assert [frame.request for frame in shown] == [newer]
    assert torch.equal(shown[0].reference, one_pass_reference(newer))


@pytest.mark.parametrize("waiting_latent", [InstanceLatent(2), InstanceLatent(1)],
                         ids=["other car", "same car"])
def test_a_compare_frame_keeps_building_its_grid_only_for_a_waiting_request_of_its_latent(waiting_latent):
    """The first compare frame after a latent change builds the occupancy grid (seconds on a CPU).
    A waiting request of another car gives it up there, keeping no grid; one that compares the same
    car (an orbit) needs that grid: it is built whole, and the frame given up before its first
    chunk of rays. Either way the next frame renders to the end, as one pass renders it."""
    frames = compare_frames()
    lfn_slices = GatedColors(frames.renderer.colors, holds=())
    frames.renderer.colors = lfn_slices
    marched = GatedColors(models.renderer.march, holds=())
    request = compare_request(10.0)
    newer = FrameRequest(Orbit(azimuth=20.0), COMPARE_RES, DisplayMode.COMPARE, waiting_latent)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(FrameAbandoned):
        patch.setattr(models.renderer, "march", marched)
        # waits from the LFN's one slice on: only the volumetric half sees it
        frames.render(request, waiting=lambda: newer if lfn_slices.slices else None)
    assert lfn_slices.slices == [COMPARE_RES * COMPARE_RES] and marched.slices == []
    assert (frames.volumetric.grid is not None) == (waiting_latent == request.latent)
    frame = frames.render(request)
    assert frames.volumetric.grid is not None
    assert torch.equal(frame.reference, one_pass_reference(request))


DEPTH_RES, DEPTH_CHUNK_RAYS = 24, 128  # gradient depth's primal pass in 5 chunks (576 rays)


@pytest.mark.parametrize("mode", [DisplayMode.DEPTH, DisplayMode.NORMALS])
def test_the_worker_gives_up_a_stale_depth_frame_within_one_chunk_of_its_pass(monkeypatch, mode):
    lfn = tiny_lfn()
    frames = FrameRenderer(LFNRenderer(lfn, max_rays=DEPTH_CHUNK_RAYS),
                           LatentBank(lfn.latents.weight, names(3)))
    primal = GatedColors(models.depth.mlp_forward, holds=(0,))
    tangent = GatedColors(models.depth.mlp_forward_with_tangents, holds=())
    monkeypatch.setattr(models.depth, "mlp_forward", primal)
    monkeypatch.setattr(models.depth, "mlp_forward_with_tangents", tangent)
    stale, newer = (FrameRequest(Orbit(azimuth=azimuth), DEPTH_RES, mode, InstanceLatent(1))
                    for azimuth in (10.0, 20.0))
    shown = frames_shown_when_superseded(frames, stale, primal, newer)
    assert [frame.request for frame in shown] == [newer]
    worker_primal, worker_tangent = primal.slices, tangent.slices
    primal.slices, tangent.slices = [], []
    one_pass = frames.render(newer)  # newer alone, never asked to give up
    assert len(primal.slices) == 5  # chunks of 128 rays and a tail of 64
    # stale: the primal chunk in flight when newer came, no other and no tangent pass
    assert worker_primal == [DEPTH_CHUNK_RAYS] + primal.slices
    assert worker_tangent == tangent.slices and tangent.slices
    assert torch.equal(shown[0].image, one_pass.image)


DEPTH_SLICE_RES = Resolution.square(128)  # one CPU chunk: a primal pass of 4 slices
TANGENT_SLICE_RAYS = CPU_SLICE_RAYS // models.depth.TANGENT_STREAMS  # rays of a tangent pass's slice


@pytest.fixture(scope="module")
def shipped_cars():
    """The shipped checkpoint: a car whose depth the solve finds (a random network's it marks invalid)."""
    return load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / "cars.pt")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("res", "max_rays"),
                         [(DEPTH_SLICE_RES, None), (WIDE, None), (Resolution.square(160), 10_000)],
                         ids=["one chunk", "a tail", "several chunks"])
def test_gradient_depth_in_slices_is_bit_identical_to_its_chunks_in_one_pass(monkeypatch, res, max_rays,
                                                                              precision, shipped_cars):
    renderer = LFNRenderer(shipped_cars.model, precision=precision, max_rays=max_rays)
    renderer.set_latent(shipped_cars.latents[0])

    def colors_and_depth():
        color, derivatives = models.depth.color_derivatives(renderer, CAMERA, res)
        depth = models.depth.solve_depth(color, *models.depth.pixel_equations(derivatives), res).depth
        return color, derivatives, depth

    sliced = colors_and_depth()
    with monkeypatch.context() as unsliced:  # each chunk of either pass one call, as before slices
        unsliced.setattr(models.depth, "CPU_SLICE_RAYS", 1 << 30)
        whole = colors_and_depth()
    assert all(torch.equal(a, b) for a, b in zip(sliced, whole, strict=True))
    assert bool(sliced[2].gt(0).any())  # the car's depth, not an empty frame


@pytest.mark.parametrize("held", ["primal", "tangent"])
def test_the_worker_gives_up_a_stale_depth_frame_within_one_slice_of_either_pass(monkeypatch, held):
    """A depth frame of one CPU chunk (the renderer's own) renders each pass in slices and is given
    up between two: the primal's CPU_SLICE_RAYS rays, the tangent pass's TANGENT_STREAMS times fewer."""
    lfn = tiny_lfn()
    frames = FrameRenderer(LFNRenderer(lfn), LatentBank(lfn.latents.weight, names(3)))
    assert frames.renderer.rays_per_chunk >= DEPTH_SLICE_RES.pixels
    primal = GatedColors(models.depth.mlp_forward, holds=(0,) if held == "primal" else ())
    tangent = GatedColors(models.depth.mlp_forward_with_tangents, holds=(0,) if held == "tangent" else ())
    monkeypatch.setattr(models.depth, "mlp_forward", primal)
    monkeypatch.setattr(models.depth, "mlp_forward_with_tangents", tangent)
    stale, newer = (FrameRequest(Orbit(azimuth=az), DEPTH_SLICE_RES, DisplayMode.DEPTH, InstanceLatent(1))
                    for az in (10.0, 20.0))
    shown = frames_shown_when_superseded(frames, stale, primal if held == "primal" else tangent, newer)
    assert [frame.request for frame in shown] == [newer]
    worker_primal, worker_tangent = primal.slices, tangent.slices
    primal.slices, tangent.slices = [], []
    one_pass = frames.render(newer)
    assert primal.slices == [CPU_SLICE_RAYS] * 4
    assert len(tangent.slices) > 1 and set(tangent.slices[:-1]) == {TANGENT_SLICE_RAYS}
    if held == "primal":  # stale: the primal slice in flight when newer came, no other, no tangent pass
        assert (worker_primal, worker_tangent) == ([CPU_SLICE_RAYS] + primal.slices, tangent.slices)
    else:  # stale: its whole primal pass, the tangent slice in flight, no other
        assert (worker_primal, worker_tangent) == (primal.slices * 2, [TANGENT_SLICE_RAYS] + tangent.slices)
    assert torch.equal(shown[0].image, one_pass.image)


# An EPI of a 128-wide view: 97 rows × 128 rays, colored in 3 slices of CPU_SLICE_RAYS and a tail
EPI_VIEW = Resolution.square(128)
EPI_SLICES = [CPU_SLICE_RAYS] * 3 + [97 * 128 - 3 * CPU_SLICE_RAYS]


def epi_frames(max_rays: int | None = None) -> FrameRenderer:
    lfn = tiny_lfn()
    return FrameRenderer(every_ray(lfn, max_rays=max_rays), LatentBank(lfn.latents.weight, names(3)))


def epi_request(azimuth: float = 10.0, scanline: float = 0.5, res: Resolution = EPI_VIEW) -> EpiRequest:
    return EpiRequest(Orbit(azimuth=azimuth), res, InstanceLatent(1), scanline, shift=0.1)


def test_the_worker_gives_up_a_stale_epi_within_one_slice_and_the_next_renders_to_the_end():
    """Dragging the scanline: EPIs of one view (its gradient depth reused), each newer than the last."""
    frames = epi_frames()
    gate = GatedColors(frames.renderer.colors, holds=(0, 1))
    frames.renderer.colors = gate
    stale, newer, newest = (epi_request(scanline=row) for row in (0.3, 0.5, 0.7))
    # newer renders to its end although newest arrives during it, as frames do
    shown = frames_shown_when_superseded(frames, stale, gate, newer, newest)
    assert [epi.request for epi in shown] == [newer, newest]
    assert gate.slices == [CPU_SLICE_RAYS] + EPI_SLICES * 2  # stale: the slice in flight, no other
    frames.renderer.colors = gate.colors
    assert torch.equal(shown[0].epi.image, frames.render_epi(newer).epi.image)


def test_a_waiting_frame_leaves_the_epi_in_flight_alone_a_waiting_epi_gives_it_up():
    """The EPI in flight is stale only once a newer EPI waits: a frame of another mode (the EPI's
    view unchanged) renders after it; the EPI that comes next gives it up."""
    frames = epi_frames()
    gate = GatedColors(frames.renderer.colors, holds=(0, 1))
    frames.renderer.colors = gate
    stale, newer = epi_request(scanline=0.3), epi_request(scanline=0.7)
    frame = FrameRequest(stale.orbit, 32, DisplayMode.RGB, stale.latent)
    shown = frames_shown_when_superseded(frames, stale, gate, frame, newer)
    assert [result.request for result in shown] == [frame, newer]  # a waiting frame goes first
    # stale: the slice the frame came at and the one newer came at; the frame: 32² rays, one slice
    assert gate.slices == [CPU_SLICE_RAYS] * 2 + [32 * 32] + EPI_SLICES


def test_the_worker_gives_up_a_stale_epi_of_another_view_within_one_chunk_of_its_depth(monkeypatch):
    """Orbiting: an EPI of a new view first computes that view's gradient depth (models/depth.py),
    in chunks; a newer EPI waiting gives it up between two, and its colors never start."""
    frames = epi_frames(max_rays=DEPTH_CHUNK_RAYS)
    primal = GatedColors(models.depth.mlp_forward, holds=(0,))
    tangent = GatedColors(models.depth.mlp_forward_with_tangents, holds=())
    colors = GatedColors(frames.renderer.colors, holds=())
    monkeypatch.setattr(models.depth, "mlp_forward", primal)
    monkeypatch.setattr(models.depth, "mlp_forward_with_tangents", tangent)
    frames.renderer.colors = colors
    stale, newer = (epi_request(azimuth, res=Resolution.square(DEPTH_RES)) for azimuth in (10.0, 20.0))
    shown = frames_shown_when_superseded(frames, stale, primal, newer)
    assert [epi.request for epi in shown] == [newer]
    worker = primal.slices, tangent.slices, colors.slices
    primal.slices, tangent.slices, colors.slices = [], [], []
    alone = epi_frames(max_rays=DEPTH_CHUNK_RAYS)  # newer by itself, with no depth kept
    alone.renderer.colors = colors
    one_pass = alone.render_epi(newer)
    assert len(primal.slices) == 5 and tangent.slices  # chunks of 128 rays and a tail of 64
    # stale: the primal chunk in flight when newer came, no other, no tangent pass, no colors
    assert worker == ([DEPTH_CHUNK_RAYS] + primal.slices, tangent.slices, colors.slices)
    assert torch.equal(shown[0].epi.image, one_pass.epi.image)
