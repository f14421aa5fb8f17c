"""Switching the LFN's backend and precision under a running render thread (viewer/backend_switch.py)."""

from __future__ import annotations

import time

import pytest
import torch

from engine.display_mode import DisplayMode
from engine.frame import Frame, FrameRenderer, FrameRequest
from engine.latents import InstanceLatent, LatentBank
from models.backends.ray_function import built_count
from models.cameras import Orbit
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
from viewer import backend_switch
from viewer.backend_switch import BackendSwitch, SwitchStatus
from viewer.worker import RenderWorker


@pytest.fixture
def worker(tiny_ckpt):
    ckpt = load_checkpoint(tiny_ckpt)
    frames = FrameRenderer(make_renderer(ckpt.model), LatentBank(ckpt.latents, ckpt.instance_names))
    worker = RenderWorker(frames)
    yield worker
    worker.close()


def request(instance: int) -> FrameRequest:
    return FrameRequest(Orbit(azimuth=50.0), 16, DisplayMode.RGB, InstanceLatent(instance))


def settle(worker: RenderWorker, switch: BackendSwitch | None = None) -> None:
    """Wait until the render thread is idle and no switch runs."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (
            worker.idle and (switch is None or not switch.status().switching)):
        time.sleep(0.01)


def shown(worker: RenderWorker, switch: BackendSwitch | None = None) -> Frame:
    """The frame the render thread hands over once it settles."""
    settle(worker, switch)
    done = worker.take()
    assert isinstance(done, Frame), done
    return done


@pytest.mark.parametrize("backend, precision, atol", [("eager", "fp32", 1e-5), ("torchscript", "bf16", 0.05)])
def test_switch_keeps_the_latent_and_renders_the_shown_view_again(worker, backend, precision, atol):
    worker.submit(request(2))
    before = shown(worker)
    old = worker.frames.renderer
    switch = BackendSwitch(worker)
    switch.start(backend, precision)
    after = shown(worker, switch)  # no new request: the worker renders the shown one again
    assert switch.status() == SwitchStatus()  # no switch running, none failed
    new = worker.frames.renderer
    assert new is not old and (new.backend, new.precision) == (backend, precision)
    assert after.request == before.request
    torch.testing.assert_close(after.image, before.image, atol=atol, rtol=0)
    # A renderer starts out holding instance 0; the new one was handed instance 2's latent.
    fresh = make_renderer(old.model, "cpu", precision, backend)
    fresh.set_latent(worker.frames.latents.latent(InstanceLatent(2)))
    assert torch.equal(after.image, fresh.render_rgba(after.request.orbit.cam2world(), 16))


def test_unavailable_backend_is_refused_with_its_reason(worker):
    old = worker.frames.renderer
    switch = BackendSwitch(worker)
    reasons = switch.backend_reasons()
    assert reasons["torchscript"] is None and reasons["eager"] is None
    assert reasons["compile"] and reasons["triton"]  # a CPU renderer
    assert switch.precision_reasons() == {"fp32": None, "fp16": None, "bf16": None}
    switch.start("compile", "fp32")
    assert worker.idle
    assert switch.status() == SwitchStatus(error=f"compile fp32: {reasons['compile']}")
    assert worker.frames.renderer is old


def test_a_build_that_fails_on_its_first_frame_keeps_the_old_renderer(worker, monkeypatch):
    def lazily_failing(*args):  # as torch.compile does: it builds, then fails on the first call
        renderer = make_renderer(*args)
        renderer.render_rgba = lambda *_: (_ for _ in ()).throw(RuntimeError("compile failed\ntrace"))
        return renderer

    monkeypatch.setattr(backend_switch, "make_renderer", lazily_failing)
    worker.submit(request(1))
    before = shown(worker)
    old = worker.frames.renderer
    switch = BackendSwitch(worker)
    switch.start("eager", "fp32")
    settle(worker, switch)
    assert switch.status() == SwitchStatus(error="eager fp32: RuntimeError: compile failed")
    assert worker.frames.renderer is old
    assert worker.take() is None  # nothing changed, so nothing rendered again
    worker.submit(request(1))
    assert torch.equal(shown(worker).image, before.image)


def test_switching_back_and_forth_builds_each_backend_once(worker):
    """A build that is never freed (a TorchScript trace stays in torch's compilation unit, an
    export in dynamo's caches) happens once per backend and precision, however often the user
    switches back to it."""
    switch = BackendSwitch(worker)
    compiled = torch.jit._state._python_cu  # where every trace stays for the life of the process
    for round_ in range(3):
        for backend, precision in (("eager", "fp32"), ("torchscript", "bf16"), ("export", "fp32"),
                                   ("torchscript", "fp32")):
            switch.start(backend, precision)
            settle(worker, switch)
            assert switch.status() == SwitchStatus(), switch.status()
        if round_ == 0:
            built, traces = built_count(), len(compiled.get_functions())
    assert (built_count(), len(compiled.get_functions())) == (built, traces)
