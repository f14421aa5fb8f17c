"""Shared frames (engine/shared_frames.py): the pool's hand-outs, the frame renderer and render
thread giving frames back, and, on the GPU machine, a frame GL copies without the interop."""

from __future__ import annotations

import enum
import os
import time

import numpy as np
import pytest
import torch

from engine import shared_frames
from engine.display_mode import DisplayMode
from engine.frame import FrameRenderer, FrameRequest
from engine.latents import InstanceLatent, LatentBank
from engine.shared_frames import FRAMES_PER_RES, SharedFramePool, shared_frame_pool
from engine.texture import FrameTexture, cuda_check, to_rgba32f
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
from models.resolution import Resolution
from viewer.worker import RenderWorker


class HostFrame:
    """A SharedFrame's stand-in on a machine without CUDA: host memory, same interface."""

    def __init__(self, pool: SharedFramePool, res: Resolution, device: torch.device):
        self.pool, self.res = pool, res
        self.tensor = torch.full((res.height, res.width, 4), -1.0)
        self.released = False

    def release(self) -> None:
        self.released = True


@pytest.fixture
def pool(monkeypatch) -> SharedFramePool:
    monkeypatch.setattr(shared_frames, "SharedFrame", HostFrame)
    return SharedFramePool(None, torch.device("cpu"))


def request(mode: DisplayMode = DisplayMode.RGB, res: int = 16) -> FrameRequest:
    return FrameRequest(Orbit(azimuth=50.0), res, mode, InstanceLatent(1))


def test_cuda_check_returns_values_and_names_any_error():
    class Result(enum.IntEnum):  # cuda-python's runtime and driver results alike: 0 is success
        SUCCESS = 0
        CUDA_ERROR_NOT_SUPPORTED = 801

    assert cuda_check((Result.SUCCESS, 7, 8), "cuMemMap") == (7, 8)
    with pytest.raises(RuntimeError, match="^cuMemCreate failed: CUDA_ERROR_NOT_SUPPORTED$"):
        cuda_check((Result.CUDA_ERROR_NOT_SUPPORTED,), "cuMemCreate")


def test_no_pool_without_cuda(egl):
    assert shared_frame_pool(egl, torch.device("cpu")) is None


def test_pool_hands_out_each_frame_once_and_a_bounded_number(pool):
    taken = [pool.take(16) for _ in range(FRAMES_PER_RES)]
    assert len({id(frame) for frame in taken}) == FRAMES_PER_RES
    assert pool.take(16) is None  # all held: the caller renders into its own memory
    assert pool.take(32) is not None  # another resolution has its own frames
    pool.give_back(taken[1])
    assert pool.take(16) is taken[1] and pool.take(16) is None
    pool.release()
    assert all(frame.released for frame in taken) and pool.take(16) is None


def test_a_frame_that_cannot_be_made_disables_the_pool(pool, monkeypatch):
    def refuse(*_):
        raise RuntimeError("cuMemCreate failed: CUDA_ERROR_NOT_SUPPORTED")

    monkeypatch.setattr(shared_frames, "SharedFrame", refuse)
    assert pool.take(16) is None
    assert pool.disabled_because == "RuntimeError: cuMemCreate failed: CUDA_ERROR_NOT_SUPPORTED"
    monkeypatch.setattr(shared_frames, "SharedFrame", HostFrame)
    assert pool.take(16) is None  # never again


@pytest.fixture
def frames(tiny_ckpt, pool) -> FrameRenderer:
    ckpt = load_checkpoint(tiny_ckpt)
    return FrameRenderer(make_renderer(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names),
                         shared_frames=pool)


@pytest.mark.parametrize("mode", [DisplayMode.RGB, DisplayMode.DEPTH])
def test_frames_are_written_into_a_shared_frame(frames, pool, mode):
    own = FrameRenderer(frames.renderer, frames.latents).render(request(mode))  # no pool
    frame = frames.render(request(mode))
    assert frame.shared is not None and frame.image.data_ptr() == frame.shared.tensor.data_ptr()
    assert torch.equal(frame.image, to_rgba32f(own.image))
    frame.drop()
    assert frame.shared is None and pool.take(16) is not None


def test_a_failed_render_gives_its_shared_frame_back(frames, pool):
    with pytest.raises(Exception, match="99"):
        frames.render(FrameRequest(Orbit(), 16, DisplayMode.RGB, InstanceLatent(99)))  # no such instance
    assert len([pool.take(16) for _ in range(FRAMES_PER_RES)]) == FRAMES_PER_RES
    assert all(pool.take(16) is None for _ in range(2))


def test_render_thread_gives_back_frames_nobody_took(frames, pool):
    worker = RenderWorker(frames)
    try:
        for res in (8, 8, 8, 8, 12):  # more unshown frames than the pool holds per size
            worker.submit(request(res=res))
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not worker.idle:
                time.sleep(0.005)
        shown = worker.take()
        assert shown.request.res == Resolution.square(12) and shown.shared is not None
        # the 8² frames were replaced before anyone took them: all free again
        assert len({id(pool.take(8)) for _ in range(FRAMES_PER_RES)}) == FRAMES_PER_RES
    finally:
        worker.close()


def test_shared_frame_reaches_the_texture_without_interop(egl):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (the GPU machine)")
    pool = shared_frame_pool(egl, torch.device("cuda"))
    assert pool is not None, "this GL lacks GL_EXT_memory_object_fd"
    textures = FrameTexture(egl)
    frame = pool.take(64)
    frame.tensor.copy_(torch.rand(64, 64, 4, device="cuda"))
    expected = frame.tensor.cpu().numpy()  # also waits for the copy, as the render thread does
    texture = textures.upload(frame.tensor, frame)
    assert textures.texture_path == "cuda-gl-shared", pool.disabled_because
    assert np.array_equal(np.frombuffer(texture.read(), np.float32).reshape(64, 64, 4), expected)
    assert pool.take(64) is frame  # free again once GL has copied it
    textures.release()
    pool.release()


def test_viewer_threads_show_shared_frames_exactly(egl, tiny_ckpt):
    """The window's flow on the GPU: the render thread writes shared frames, this (GL) thread
    uploads each newest one; every texture holds exactly what the renderer makes."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (the GPU machine)")
    ckpt = load_checkpoint(tiny_ckpt)
    renderer = make_renderer(ckpt.model, torch.device("cuda"), "fp32", "eager")
    pool = shared_frame_pool(egl, torch.device("cuda"))
    latents = LatentBank(ckpt.latents, ckpt.instance_names)
    worker, textures = RenderWorker(FrameRenderer(renderer, latents, shared_frames=pool)), FrameTexture(egl)
    try:
        for azimuth in range(0, 360, 15):
            worker.submit(FrameRequest(Orbit(azimuth=float(azimuth)), 32, DisplayMode.RGB, InstanceLatent(1)))
            deadline, frame = time.monotonic() + 30, None
            while frame is None and time.monotonic() < deadline:
                frame = worker.take()
                time.sleep(0.001)
            assert frame is not None and frame.shared is not None
            texture = textures.upload(frame.image, frame.shared)
            assert textures.texture_path == "cuda-gl-shared", pool.disabled_because
            expected = renderer.render_rgba(frame.request.orbit.cam2world(), 32).cpu().numpy()
            assert np.array_equal(np.frombuffer(texture.read(), np.float32).reshape(32, 32, 4), expected)
    finally:
        worker.close()
        textures.release()
        pool.release()


@pytest.mark.parametrize("copy_with", ["compute", "unpack"])
def test_gl_copies_a_frame_buffer_into_its_texture_exactly(egl, copy_with):
    """The GL half of a shared frame's trip, with a GL-made buffer in place of CUDA's memory."""
    platform = os.environ.get("PYOPENGL_PLATFORM")
    pool = SharedFramePool(egl, torch.device("cpu"), copy_with)
    texels = np.random.default_rng(0).random((24, 40, 4), dtype=np.float32)  # not a multiple of 16
    buffer = egl.buffer(texels.tobytes())
    texture = egl.texture((40, 24), 4, dtype="f4")
    pool.copy(buffer.glo, texture)
    assert np.array_equal(np.frombuffer(texture.read(), np.float32).reshape(24, 40, 4), texels)
    # PyOpenGL's platform was chosen for this process only: a viewer window started from here
    # (the window tests) must pick its own, GLX under X, or its first GL call fails
    assert os.environ.get("PYOPENGL_PLATFORM") == platform
    pool.release()
    buffer.release()
    texture.release()
