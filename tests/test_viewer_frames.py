"""Frame requests → display tensors, the render thread, and tensor → texture uploads."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

import engine.frame
import models.stereo_depth
from engine.display_mode import DisplayMode
from engine.frame import EpiFrame, EpiRequest, Frame, FrameRenderer, FrameRequest
from engine.latents import (
    BlendLatent,
    FittedLatent,
    InstanceLatent,
    LatentBank,
    LatentSelection,
    RandomLatent,
)
from engine.texture import FrameTexture, to_rgba32f
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.epi import EpipolarImage
from models.renderer import make_renderer
from models.resolution import Resolution
from tests.conftest import tiny_lfn
from viewer.worker import RenderWorker, join_within


@pytest.fixture
def frames(tiny_ckpt, tiny_volumetric_ckpt) -> FrameRenderer:
    ckpt, baseline = load_checkpoint(tiny_ckpt), load_checkpoint(tiny_volumetric_ckpt)
    return FrameRenderer(
        make_renderer(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names),
        make_renderer(baseline.model), LatentBank(baseline.latents, baseline.instance_names),
    )


SHOWN = InstanceLatent(1)


def request(mode: DisplayMode = DisplayMode.RGB, latent: LatentSelection = SHOWN,
            res: Resolution | int = 16) -> FrameRequest:
    return FrameRequest(Orbit(azimuth=50.0), res, mode, latent)


def test_rgb_frame_is_the_renderers_image(frames):
    frame = frames.render(request())
    frames.renderer.set_latent(frames.latents.table[1])
    expected = frames.renderer.render(Orbit(azimuth=50.0).cam2world(), 16)
    assert frame.image.shape == (16, 16, 4) and torch.equal(frame.image[..., :3], expected)
    assert (frame.image[..., 3] == 1).all()  # RGBA, the texture's own layout
    assert frame.reference is None and frame.render_ms > 0


def test_latent_swaps_fold_weights_and_never_retrace(frames, monkeypatch):
    traced = frames.renderer.ray_backend.function
    calls = []
    original = frames.renderer.set_latent
    monkeypatch.setattr(frames.renderer, "set_latent",
                        lambda z, offset=None: (calls.append((z, offset)), original(z, offset)))
    first = frames.render(request(latent=InstanceLatent(0))).image
    frames.render(request(latent=InstanceLatent(0)))
    mixed = frames.render(request(latent=BlendLatent(0, 2, 0.5))).image
    assert len(calls) == 2 and [offset for _, offset in calls] == [None, None]  # on a change only
    assert frames.renderer.ray_backend.function is traced
    assert not torch.equal(first, mixed)
    # a car refined past its latent: the frame renders its latent with its modulation offset
    width = 2 * frames.renderer.model.config.hidden_layers * frames.renderer.model.config.width
    frames.latents.offsets[0] = 0.5 * torch.randn(width)
    refined = frames.render(request(latent=InstanceLatent(0))).image
    assert torch.equal(calls[-1][1], frames.latents.offsets[0])
    assert not torch.equal(refined, first) and frames.renderer.ray_backend.function is traced


def test_compare_frame_renders_the_volumetric_twin(frames):
    frame = frames.render(request(DisplayMode.COMPARE))
    assert frame.reference is not None and frame.reference.shape == (16, 16, 3)
    assert frame.reference_ms > 0
    assert frames.render(request(DisplayMode.COMPARE, BlendLatent(0, 2, 0.5))).reference is not None
    # a random or fitted code has no twin in the volumetric table: the LFN is shown alone
    assert frames.render(request(DisplayMode.COMPARE, RandomLatent(1))).reference is None
    assert frames.render(request(DisplayMode.COMPARE, FittedLatent(1, "fit", 0, 0.0))).reference is None



def test_compare_frame_renders_the_car_of_the_same_name(tiny_volumetric_ckpt):
    """An LFN holding more cars than the baseline, in another order: the volumetric half renders
    the car of the LFN's name, and a car the baseline lacks is shown by the LFN alone."""
    baseline = load_checkpoint(tiny_volumetric_ckpt)  # car000, car001, car002
    lfn = tiny_lfn(num_instances=4)
    volumetric = make_renderer(baseline.model)
    lfn_names = ["car002", "extra", "car000", "car001"]
    frames = FrameRenderer(make_renderer(lfn), LatentBank(lfn.latents.weight, lfn_names),
                           volumetric, LatentBank(baseline.latents, baseline.instance_names))
    fed = []
    original = volumetric.set_latent
    volumetric.set_latent = lambda z, offset=None: (fed.append(z), original(z, offset))
    table = frames.volumetric_latents.table
    assert frames.render(request(DisplayMode.COMPARE, InstanceLatent(0))).reference is not None
    assert torch.equal(fed[-1], table[2])
    assert frames.render(request(DisplayMode.COMPARE, BlendLatent(2, 3, 0.25))).reference is not None
    assert torch.equal(fed[-1], torch.lerp(table[0], table[1], 0.25))
    fed.clear()
    for lacking in (InstanceLatent(1), BlendLatent(0, 1, 0.5)):
        frame = frames.render(request(DisplayMode.COMPARE, lacking))
        assert frame.reference is None and torch.isfinite(frame.image).all()
    assert fed == []  # no other car was put in its place

@pytest.mark.parametrize("mode, channels", [(DisplayMode.DEPTH, 3), (DisplayMode.NORMALS, 4)])
def test_depth_modes(frames, mode, channels):
    frame = frames.render(request(mode))
    assert frame.image.shape == (16, 16, channels) and torch.isfinite(frame.image).all()
    near, far = frame.depth_range
    assert near < far


@pytest.mark.parametrize("mode, channels", [(DisplayMode.RGB, 4), (DisplayMode.DEPTH, 3),
                                            (DisplayMode.NORMALS, 4), (DisplayMode.COMPARE, 4)])
def test_non_square_frames_of_every_mode(frames, mode, channels):
    frame = frames.render(request(mode, res=Resolution(24, 16)))
    assert frame.image.shape == (16, 24, channels) and torch.isfinite(frame.image).all()
    if mode is DisplayMode.COMPARE:
        assert frame.reference.shape == (16, 24, 3)


def test_depth_requests_ask_for_the_summed_equations_and_the_refinement(frames, monkeypatch):
    asked, refined = [], []
    gradient, refine = models.stereo_depth.gradient_depth, models.stereo_depth.refine_depth
    monkeypatch.setattr(models.stereo_depth, "gradient_depth",
                        lambda *a, **k: asked.append(k) or gradient(*a, **k))
    monkeypatch.setattr(models.stereo_depth, "refine_depth",
                        lambda *a, **k: refined.append(a[3]) or refine(*a, **k))
    plain = request(DisplayMode.DEPTH)
    summed = dataclasses.replace(plain, summed_depth=True)
    stereo = dataclasses.replace(plain, stereo_depth=True)
    assert len({plain, summed, stereo}) == 3  # a toggle in the panel asks for a new frame
    frames.render(plain)
    frames.render(summed)
    frame = frames.render(stereo)
    assert [k["summed"] for k in asked] == [False, True, False]
    assert len(refined) == 1  # the refinement runs on the stereo request's gradient depth only
    assert torch.isfinite(frame.image).all()


def test_epis_of_one_view_share_its_gradient_depth(frames, monkeypatch):
    asked = []
    original = engine.frame.gradient_depth
    monkeypatch.setattr(engine.frame, "gradient_depth", lambda *a, **k: asked.append(k) or original(*a, **k))
    first = EpiRequest(Orbit(azimuth=50.0), Resolution.square(16), SHOWN, 0.25, 0.1)
    frames.render_epi(first)
    frames.render_epi(dataclasses.replace(first, scanline=0.75, shift=0.2))  # the same view
    assert len(asked) == 1
    frames.render_epi(dataclasses.replace(first, summed_depth=True))
    frames.render_epi(dataclasses.replace(first, orbit=Orbit(azimuth=60.0)))
    frames.render_epi(dataclasses.replace(first, latent=InstanceLatent(2)))
    frames.replace_renderer(make_renderer(frames.renderer.model, backend="eager"))
    frames.render_epi(first)  # another backend: its own depth
    assert len(asked) == 5


def test_the_epi_of_a_wide_view_is_as_wide_as_the_view_and_its_middle_row_is_the_views_row(frames):
    view = request(res=Resolution(48, 32))
    epi_request = EpiRequest(view.orbit, view.res, view.latent, scanline=20.5 / 32, shift=0.1)
    assert epi_request.row == 20  # a row of the view's 32, not of its 48 columns
    frame, done = frames.render(view), frames.render_epi(epi_request)
    assert done.epi.image.shape == (epi_request.rows, 48, 3) and done.epi.scanline == 20
    # the middle row's camera is the view's own: its row 20, ray for ray
    assert torch.allclose(done.epi.image[epi_request.rows // 2], frame.image[20, :, :3], atol=1e-5)
    bottom = dataclasses.replace(epi_request, scanline=1.0)
    assert bottom.row == 31 and frames.render_epi(bottom).epi.image.shape == (epi_request.rows, 48, 3)


def test_worker_renders_the_newest_request_and_reports_errors(frames):
    worker = RenderWorker(frames)
    try:
        worker.submit(request(res=8))
        worker.submit(request(res=12))
        deadline = time.monotonic() + 30
        shown = []
        while time.monotonic() < deadline and not (shown and shown[-1].request.res == Resolution.square(12)):
            done = worker.take()
            if done is not None:
                shown.append(done)
            time.sleep(0.01)
        assert shown and shown[-1].request.res == Resolution.square(12)
        worker.submit(request(latent=InstanceLatent(99)))  # no such instance
        while time.monotonic() < deadline and not worker.idle:
            time.sleep(0.01)
        assert isinstance(worker.take(), Exception)
    finally:
        assert worker.close()  # the thread ended within the bound


def test_a_waiting_frame_renders_before_a_waiting_epi_and_each_has_its_slot():
    order, gate = [], threading.Event()

    class Recording:
        def render(self, request, abandon=None):
            order.append("frame")
            return Frame(request, torch.zeros(1, 1, 4))

        def render_epi(self, request, waiting=None):
            order.append("epi")
            return EpiFrame(request, EpipolarImage(torch.zeros(1, 1, 3), torch.zeros(1), 0, []))

    worker = RenderWorker(Recording())
    try:
        worker.call(lambda: gate.wait() and False)  # holds the thread while both requests arrive
        worker.submit(EpiRequest(Orbit(), Resolution.square(8), SHOWN, 0.5, 0.1))
        worker.submit(request())
        gate.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not worker.idle:
            time.sleep(0.01)
        frame, epi = worker.take(), worker.take(EpiRequest)  # each kind from its own slot
    finally:
        assert worker.close()
    assert order == ["frame", "epi"]
    assert isinstance(frame, Frame) and isinstance(epi, EpiFrame)


def test_a_render_thread_at_rest_gives_freed_memory_back_once(monkeypatch):
    import viewer.worker
    trims = []
    monkeypatch.setattr(viewer.worker, "trim_heap", lambda: trims.append(time.monotonic()))

    class Instant:
        def render(self, request, abandon=None):
            return Frame(request, torch.zeros(1, 1, 4))

        render_epi = None  # no EPI here

    worker = RenderWorker(Instant())
    try:
        for res in (8, 9, 10):  # frames in a row: trimmed at most every TRIM_PERIOD_S
            worker.submit(request(res=res))
            while worker.take() is None:
                time.sleep(0.01)
        after_first = len(trims)
        rested = time.monotonic()
        time.sleep(viewer.worker.REST_TRIM_S + 0.5)  # at rest: once REST_TRIM_S after the last frame
        assert len(trims) == after_first + 1, trims
        assert trims[-1] - rested <= viewer.worker.REST_TRIM_S + 0.2
        time.sleep(viewer.worker.REST_TRIM_S + 0.2)
        assert len(trims) == after_first + 1  # and not again while nothing renders
    finally:
        assert worker.close()


def test_join_within_names_a_thread_that_does_not_end(capsys):
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="lfn-stuck", daemon=True)
    thread.start()
    assert not join_within(thread, 0.05)
    assert "lfn-stuck did not end" in capsys.readouterr().err
    release.set()
    assert join_within(thread, 5.0) and capsys.readouterr().err == ""


def test_rgba_padding_keeps_values_and_adds_opaque_alpha():
    image = torch.rand(4, 5, 3, dtype=torch.float16)
    rgba = to_rgba32f(image)
    assert rgba.dtype == torch.float32 and rgba.shape == (4, 5, 4) and rgba.is_contiguous()
    assert torch.equal(rgba[..., :3], image.float()) and (rgba[..., 3] == 1).all()


def test_cpu_copy_upload_reads_back_exactly(egl):
    textures = FrameTexture(egl)
    image = torch.rand(6, 10, 4)
    texture = textures.upload(image)
    assert textures.texture_path == "cpu-copy" and texture.size == (10, 6)
    back = np.frombuffer(texture.read(), np.float32).reshape(6, 10, 4)
    assert np.array_equal(back, image.numpy())
    assert textures.upload(torch.rand(6, 10, 3)) is texture  # one texture per size, reused
    textures.release()


def test_cuda_gl_interop_reads_back_exactly(egl):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (the GPU machine)")
    textures = FrameTexture(egl)
    image = torch.rand(64, 48, 3, device="cuda", dtype=torch.float16)
    texture = textures.upload(image)
    assert textures.texture_path == "cuda-gl-interop", textures.fallback_reason
    back = np.frombuffer(texture.read(), np.float32).reshape(64, 48, 4)
    assert np.array_equal(back, to_rgba32f(image).cpu().numpy())
    textures.release()
