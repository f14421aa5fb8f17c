"""CUDA graphs of LFN frames (models/frame_graphs.py) and the in-place set_latent they rely on.

The CPU tests stand in an eager FrameGraphs (same interface, no capture) to check the renderer's
side: which frames take the graph path, that the step renders what the plain path renders, that a
frame never aliases the graph's output. The capture itself is checked on CUDA only.
"""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from models.cameras import orbit_pose
from models.frame_graphs import FrameGraphs
from models.lfn import LFNConfig, LightFieldNetwork
from models.renderer import GRAPH_MAX_PIXELS, LFNRenderer
from models.resolution import Resolution
from tests.conftest import TINY, tiny_lfn

cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


class EagerGraphs:
    """FrameGraphs without the capture: runs the step at each call into a fixed output tensor, so
    the renderer's graph path runs on a CPU. Records the resolutions it served."""

    def __init__(self, make_step):
        self.pose = torch.zeros(3, 4)
        self.make_step = make_step
        self.outputs: dict[Resolution, torch.Tensor] = {}
        self.calls: list[Resolution] = []
        self.cleared = 0

    def __call__(self, cam2world: torch.Tensor, res: Resolution) -> torch.Tensor:
        self.pose.copy_(cam2world[:3, :4])
        frame = self.make_step(self.pose, res)()
        self.outputs.setdefault(res, torch.empty_like(frame)).copy_(frame)
        self.calls.append(res)
        return self.outputs[res]

    def clear(self) -> None:
        self.cleared += 1


def with_eager_graphs(renderer: LFNRenderer) -> EagerGraphs:
    renderer.frame_graphs = EagerGraphs(renderer._graph_step)
    return renderer.frame_graphs


@pytest.mark.parametrize("backend", ["torchscript", "eager"])
def test_set_latent_updates_the_same_tensors_and_renders_the_new_latent(backend):
    model = tiny_lfn()
    renderer = LFNRenderer(model, backend=backend)
    tensors = renderer.folded_mlp()
    pointers = [t.data_ptr() for t in tensors]
    pose = orbit_pose(40, 25)
    first = renderer.render(pose, 12)
    for instance in (1, 2):
        renderer.set_latent(model.latents.weight[instance])
        assert renderer.folded_mlp() is tensors
        assert [t.data_ptr() for t in renderer.folded_mlp()] == pointers
        fresh = LFNRenderer(model, backend="eager")
        fresh.set_latent(model.latents.weight[instance])
        image = renderer.render(pose, 12)
        assert (image - fresh.render(pose, 12)).abs().max() <= 1e-5
        assert (image - first).abs().max() > 1e-3


def test_set_latent_never_writes_into_the_model():
    # specialize hands back the head's own parameters: the renderer must hold copies of them, or an
    # in-place latent update would bump their version under a fit's autograd graph.
    model = tiny_lfn()
    renderer = LFNRenderer(model, backend="eager")
    head = model.net.head
    versions = (head.weight._version, head.bias._version)
    renderer.set_latent(model.latents.weight[1])
    renderer.set_latent(model.latents.weight[2])
    assert (head.weight._version, head.bias._version) == versions
    held = {t.data_ptr() for t in renderer.folded_mlp()}
    assert not held & {p.data_ptr() for p in model.parameters()}


def test_new_tensor_shapes_rebind_and_drop_the_graphs():
    renderer = LFNRenderer(tiny_lfn(), backend="eager")
    graphs = with_eager_graphs(renderer)
    renderer.set_latent(renderer.model.latents.weight[1])
    assert graphs.cleared == 0
    wider = LightFieldNetwork(LFNConfig(num_instances=1, **{**TINY, "width": 48}))
    renderer.model = wider  # no folded tensor fits the old ones
    renderer.set_latent(wider.latents.weight[0])
    assert graphs.cleared == 1
    assert renderer.folded_mlp()[0].shape == (48, 6)
    reference = LFNRenderer(wider, backend="eager", cuda_graphs=False)
    pose = orbit_pose(30, 20)
    assert torch.equal(renderer.render(pose, 8), reference.render(pose, 8))


def test_cuda_graphs_are_off_on_the_cpu():
    model = tiny_lfn()
    assert LFNRenderer(model).frame_graphs is None
    assert LFNRenderer(model, cuda_graphs=True, backend="eager").frame_graphs is None


@pytest.mark.parametrize("backend", ["torchscript", "eager"])
def test_the_graph_step_renders_what_the_plain_path_renders(backend):
    model = tiny_lfn()
    plain = LFNRenderer(model, backend=backend)
    graphed = LFNRenderer(model, backend=backend)
    graphs = with_eager_graphs(graphed)
    for azimuth, elevation in [(30, 20), (200, -5), (95, 60)]:
        pose = orbit_pose(azimuth, elevation, 2.7)
        # the plain path evaluates only the rays inside the bound, the graph all of them: a CPU
        # product's rounding may differ with the batch, so equal up to float32's last bits
        assert torch.allclose(graphed.render(pose, 16), plain.render(pose, 16), rtol=0, atol=1e-6)
        assert torch.allclose(graphed.render_rgba(pose, 16), plain.render_rgba(pose, 16), rtol=0, atol=1e-6)
    assert graphs.calls == [Resolution.square(16)] * 6


def test_a_frame_never_aliases_the_graph_output():
    renderer = LFNRenderer(tiny_lfn(), backend="eager")
    graphs = with_eager_graphs(renderer)
    first = renderer.render(orbit_pose(30, 20), 8)
    kept = first.clone()
    out = torch.empty(8, 8, 4)
    rgba = renderer.render_rgba(orbit_pose(120, 10), 8, out=out)
    assert rgba.data_ptr() == out.data_ptr()
    static = graphs.outputs[Resolution.square(8)]
    assert first.data_ptr() != static.data_ptr() and torch.equal(first, kept)
    assert (rgba[..., 3] == 1).all() and torch.equal(rgba[..., :3], static.view(8, 8, 3))


def test_frames_too_large_for_a_graph_render_without_one():
    renderer = LFNRenderer(tiny_lfn(), backend="eager", max_rays=100)
    graphs = with_eager_graphs(renderer)
    renderer.render(orbit_pose(30, 20), 10)  # 100 rays: one pass
    renderer.render(orbit_pose(30, 20), 11)  # 121 rays: two chunks
    assert graphs.calls == [Resolution.square(10)]
    renderer.rays_per_chunk = 1 << 24
    one_column_more = Resolution(GRAPH_MAX_PIXELS // 1024 + 1, 1024)
    assert renderer._graphed_colors(orbit_pose(30, 20), one_column_more) is None
    assert graphs.calls == [Resolution.square(10)]


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory"),  # no room for the graph's pool
    RuntimeError("operation failed due to a previous error during capture"),  # e.g. another thread
])
def test_a_failed_capture_turns_graphs_off_and_the_frame_still_renders(error):
    renderer = LFNRenderer(tiny_lfn(), backend="eager")

    def failing(cam2world, res):
        raise error

    renderer.frame_graphs = failing
    plain = LFNRenderer(renderer.model, backend="eager")
    pose = orbit_pose(30, 20)
    with pytest.warns(UserWarning, match="CUDA graphs off"):
        image = renderer.render(pose, 8)
    assert torch.equal(image, plain.render(pose, 8))
    assert renderer.frame_graphs is None


@cuda_only
def test_frame_graphs_capture_once_per_resolution_and_replay_new_poses():
    device = torch.device("cuda")
    scale = torch.arange(1.0, 13.0, device=device).view(3, 4)
    graphs = FrameGraphs(lambda pose, res: lambda: (pose * scale).sum() * res, device)
    for k in range(3):
        pose = torch.full((4, 4), float(k))
        assert float(graphs(pose, 2)) == pytest.approx(k * 78.0 * 2)
    assert float(graphs(torch.ones(3, 4), 5)) == pytest.approx(78.0 * 5)
    assert len(graphs) == 2
    graphs.clear()
    assert len(graphs) == 0


@cuda_only
@pytest.mark.parametrize("backend", ["torchscript", "eager"])
def test_cuda_graph_frames_match_plain_frames_across_latents(backend):
    model = tiny_lfn()
    graphed = LFNRenderer(model, "cuda", "fp16", backend)
    plain = LFNRenderer(model, "cuda", "fp16", backend, cuda_graphs=False)
    assert graphed.frame_graphs is not None and plain.frame_graphs is None
    frames = []
    for instance, (azimuth, elevation) in enumerate([(30, 20), (200, -5), (95, 60)]):
        graphed.set_latent(model.latents.weight[instance])
        plain.set_latent(model.latents.weight[instance])
        pose = orbit_pose(azimuth, elevation, 2.7)
        image = graphed.render(pose, 32)
        frames.append((image, image.clone()))
        assert (image.float() - plain.render(pose, 32).float()).abs().max() <= 2e-3
        rgba = graphed.render_rgba(pose, 32)
        assert (rgba - plain.render_rgba(pose, 32)).abs().max() <= 2e-3
    assert len(graphed.frame_graphs) == 1
    assert all(torch.equal(image, kept) for image, kept in frames)  # later replays left them alone



class ReplayNothing:
    def replay(self) -> None:
        pass


def test_frame_graphs_keep_each_step_and_its_constants_alive(monkeypatch):
    """A replay reads what the step's closure holds (e.g. the intrinsics on the device): once freed,
    that memory is handed out again and the next replay reads someone else's data."""
    import models.frame_graphs as frame_graphs

    monkeypatch.setattr(frame_graphs, "capture", lambda step: (ReplayNothing(), step()))
    constants = []

    def make_step(pose: torch.Tensor, res: int):
        constant = torch.full((res,), 2.0)
        constants.append(weakref.ref(constant))
        return lambda: pose.sum() * constant

    graphs = FrameGraphs(make_step, torch.device("cpu"))
    graphs(torch.eye(4), 3)
    gc.collect()
    assert constants[0]() is not None
    graphs.clear()
    gc.collect()
    assert constants[0]() is None  # the check above could fail: clear() lets go of it
