"""Frame requests → display tensors, the render thread, and tensor → texture uploads."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from engine.frame import DepthUnavailable, FrameRenderer, FrameRequest, depth_module
from engine.latents import LatentBank
from engine.texture import FrameTexture, to_rgba32f
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
from viewer.worker import RenderWorker


@pytest.fixture
def frames(tiny_ckpt, tiny_volumetric_ckpt) -> FrameRenderer:
    ckpt, baseline = load_checkpoint(tiny_ckpt), load_checkpoint(tiny_volumetric_ckpt)
    return FrameRenderer(
        make_renderer(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names),
        make_renderer(baseline.model), LatentBank(baseline.latents, baseline.instance_names),
    )


def request(mode: str = "rgb", key=("instance", 1), res: int = 16) -> FrameRequest:
    return FrameRequest(Orbit(azimuth=50.0), res, mode, key)


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
    monkeypatch.setattr(frames.renderer, "set_latent", lambda z: (calls.append(z), original(z)))
    first = frames.render(request(key=("instance", 0))).image
    frames.render(request(key=("instance", 0)))
    mixed = frames.render(request(key=("mix", 0, 2, 0.5))).image
    assert len(calls) == 2  # only when the latent changes
    assert frames.renderer.ray_backend.function is traced
    assert not torch.equal(first, mixed)


def test_compare_frame_renders_the_volumetric_twin(frames):
    frame = frames.render(request("compare"))
    assert frame.reference is not None and frame.reference.shape == (16, 16, 3)
    assert frame.reference_ms > 0
    assert frames.render(request("compare", key=("random", 1))).reference is None


@pytest.mark.parametrize("mode, channels", [("depth", 3), ("normals", 4)])
def test_depth_modes(frames, mode, channels):
    if depth_module() is None:
        with pytest.raises(DepthUnavailable, match="models/depth.py"):
            frames.render(request(mode))
        return
    frame = frames.render(request(mode))
    assert frame.image.shape == (16, 16, channels) and torch.isfinite(frame.image).all()
    near, far = frame.depth_range
    assert near < far


def test_a_summed_depth_request_asks_for_the_summed_equations(frames, monkeypatch):
    depth = depth_module()
    if depth is None:
        pytest.skip("models/depth.py is not in this build")
    asked = []
    original = depth.gradient_depth
    monkeypatch.setattr(depth, "gradient_depth", lambda *a, **k: asked.append(k) or original(*a, **k))
    plain, summed = request("depth"), dataclasses.replace(request("depth"), summed_depth=True)
    assert plain != summed  # a toggle in the panel asks for a new frame
    frames.render(plain)
    frames.render(summed)
    assert [k["summed"] for k in asked] == [False, True]


def test_worker_renders_the_newest_request_and_reports_errors(frames):
    worker = RenderWorker(frames)
    try:
        worker.submit(request(res=8))
        worker.submit(request(res=12))
        deadline = time.monotonic() + 30
        shown = []
        while time.monotonic() < deadline and not (shown and shown[-1].request.res == 12):
            done = worker.take()
            if done is not None:
                shown.append(done)
            time.sleep(0.01)
        assert shown and shown[-1].request.res == 12
        worker.submit(request(key=("instance", 99)))  # no such instance
        while time.monotonic() < deadline and not worker.idle:
            time.sleep(0.01)
        assert isinstance(worker.take(), Exception)
    finally:
        worker.close()


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
