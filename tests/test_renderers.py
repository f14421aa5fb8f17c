"""The Renderer protocol, the ray backend registry, and dispatch by capability (models/renderer.py,
models/renderer_protocol.py, models/backends/). The triton backend's frames are checked in
Triton's interpreter by tests/test_triton_lfn.py."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from engine.benchmark_methods import available_backends, depth_method
from models.backends import BACKENDS
from models.backends.aoti import cpp_compiler
from models.backends.export import export_ray_function, load_ray_program, save_ray_program
from models.backends.ray_function import RayFunctionBackend
from models.cameras import orbit_pose
from models.depth import gradient_depth
from models.lfn import ray_colors
from models.plucker import meets_unit_sphere, plucker
from models.renderer import (
    LFNRenderer,
    VolumetricRenderer,
    backend_unavailable,
    default_precision,
    frame_rays,
    make_renderer,
)
from models.renderer_protocol import Capabilities, GradientDepth, RayBackend, Renderer
from models.resolution import Resolution
from tests.conftest import tiny_lfn, tiny_volumetric

CPU = torch.device("cpu")
POSE = orbit_pose(40, 20, 2.8)
RES = 12
WIDE = Resolution(48, 32)  # 8 more columns on each side of the 32² frame


def cpu_backends() -> list[str]:
    return [name for name in BACKENDS if backend_unavailable(name, CPU, "fp32") is None]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_registered_backend_class_declares_the_ray_backend_interface(name):
    backend = BACKENDS[name]
    assert backend.name == name
    assert isinstance(backend.capabilities, Capabilities)
    reason = backend.unavailable_reason(CPU, "fp32")
    assert reason is None or (isinstance(reason, str) and reason)
    for method in ("set_mlp_tensors", "colors"):
        assert callable(getattr(backend, method))
    if backend.capabilities.fused_frames:
        assert callable(backend.render) and callable(backend.render_rgba)
    if backend.capabilities.gradient_depth is GradientDepth.FUSED_REVERSE:
        assert callable(backend.depth_equations)


def test_the_cpu_backends_are_the_ones_without_a_reason():
    # torchscript, eager and export run anywhere, aoti where a C++ compiler is; compile and triton
    # say why not on a CPU
    with_compiler = ["aoti"] if cpp_compiler() is not None else []
    assert cpu_backends() == ["torchscript", "eager", "export", *with_compiler]
    assert "CUDA" in backend_unavailable("compile", CPU, "fp32")
    assert backend_unavailable("triton", CPU, "fp32")


@pytest.mark.parametrize("name", cpu_backends())
def test_each_cpu_backend_renders_the_eager_image(name):
    model = tiny_lfn()
    eager = LFNRenderer(model, backend="eager")
    renderer = LFNRenderer(model, backend=name)
    assert isinstance(renderer, Renderer) and isinstance(renderer.ray_backend, RayBackend)
    assert renderer.backend == name and renderer.evals_per_ray == 1
    for instance in range(2):
        latent = model.latents.weight[instance]
        eager.set_latent(latent)
        renderer.set_latent(latent)
        image = renderer.render(POSE, RES)
        assert image.shape == (RES, RES, 3)
        assert torch.allclose(image, eager.render(POSE, RES), atol=1e-5)
        out = torch.full((RES, RES, 4), -1.0)
        assert renderer.render_rgba(POSE, RES, out).data_ptr() == out.data_ptr()
        assert torch.allclose(out[..., :3], image) and (out[..., 3] == 1).all()


def test_the_volumetric_renderer_is_a_renderer_with_expected_depth():
    renderer = VolumetricRenderer(tiny_volumetric())
    assert isinstance(renderer, Renderer)
    assert renderer.backend == "eager" and renderer.evals_per_ray > 1
    assert renderer.capabilities.expected_depth and renderer.capabilities.gradient_depth is None
    color, depth, opacity = renderer.render_with_depth(POSE, RES)
    assert depth.shape == opacity.shape == (RES, RES)
    rgba = renderer.render_rgba(POSE, RES)
    assert rgba.shape == (RES, RES, 4) and rgba.dtype == torch.float32
    assert torch.equal(rgba[..., :3], color) and (rgba[..., 3] == 1).all()
    lfn = LFNRenderer(tiny_lfn(), backend="eager")
    assert lfn.capabilities.gradient_depth is GradientDepth.FORWARD_MODE
    assert not lfn.capabilities.expected_depth


@pytest.mark.parametrize("name", cpu_backends())
def test_a_non_square_lfn_frame_is_the_square_frame_widened(name):
    renderer = LFNRenderer(tiny_lfn(), backend=name)
    image = renderer.render(POSE, WIDE)
    assert image.shape == (32, 48, 3)
    # the vertical field of view stays: the 32² frame is the wide one's central 32 columns
    assert torch.allclose(image[:, 8:40], renderer.render(POSE, 32), atol=1e-5)
    out = torch.full((32, 48, 4), -1.0)
    assert renderer.render_rgba(POSE, WIDE, out).data_ptr() == out.data_ptr()
    assert torch.allclose(out[..., :3], image) and (out[..., 3] == 1).all()
    depth = gradient_depth(renderer, POSE, WIDE)
    assert depth.depth.shape == depth.valid.shape == (32, 48)
    # depth's passes evaluate every ray; the frame only those that meet the unit sphere
    inside = meets_unit_sphere(plucker(*frame_rays(POSE, WIDE, CPU))).view(32, 48)
    assert 0 < inside.sum() < inside.numel() and (image[~inside] == 1).all()
    assert torch.allclose(depth.color[inside], image[inside], atol=1e-6)


@pytest.mark.parametrize("sampling", ["dense", "accelerated"])
def test_a_non_square_volumetric_frame_is_the_square_frame_widened(sampling):
    renderer = make_renderer(tiny_volumetric(), sampling=sampling)
    color, depth, opacity = renderer.render_with_depth(POSE, WIDE)
    assert color.shape == (32, 48, 3) and depth.shape == opacity.shape == (32, 48)
    assert torch.allclose(color[:, 8:40], renderer.render(POSE, 32), atol=1e-5)
    rgba = renderer.render_rgba(POSE, WIDE)
    assert rgba.shape == (32, 48, 4) and torch.equal(rgba[..., :3], color)


class HalfGrey(RayFunctionBackend):
    """A registered-in-the-test backend: every ray grey at half the eager colors' brightness."""

    name = "half-grey"

    @staticmethod
    def build_function(mlp_tensors, dtype):
        return lambda rays, *tensors: 0.5 * ray_colors(rays, *tensors).mean(-1, keepdim=True).expand(-1, 3)

    @classmethod
    def unavailable_reason(cls, device, precision):
        return "needs fp32" if precision != "fp32" else None


def test_a_registered_backend_is_listed_checked_and_built_without_other_edits(monkeypatch):
    monkeypatch.setitem(BACKENDS, HalfGrey.name, HalfGrey)
    assert HalfGrey.name in available_backends(CPU, "fp32")
    assert HalfGrey.name not in available_backends(CPU, "fp16")
    assert backend_unavailable(HalfGrey.name, CPU, "fp16") == "needs fp32"
    model = tiny_lfn()
    # every ray evaluated: the unit sphere's white background would be the same in both
    renderer = make_renderer(model, "cpu", "fp32", HalfGrey.name, bounded=False)
    assert isinstance(renderer.ray_backend, HalfGrey) and renderer.backend == HalfGrey.name
    image = renderer.render(POSE, RES)
    reference = LFNRenderer(model, backend="eager", bounded=False).render(POSE, RES)
    assert torch.allclose(image, 0.5 * reference.mean(-1, keepdim=True).expand(-1, -1, 3), atol=1e-6)


def test_an_unknown_backend_is_named_in_the_error():
    with pytest.raises(ValueError, match="unknown backend 'nope'; choose from torchscript, eager"):
        backend_unavailable("nope", CPU)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        LFNRenderer(tiny_lfn(), backend="nope")


class FusedConstant:
    """A backend with fused frames and fused depth: the renderer must hand both to it."""

    name = "fused-constant"
    capabilities = Capabilities(gradient_depth=GradientDepth.FUSED_REVERSE, fused_frames=True)
    frames: ClassVar[list[tuple[str, bool]]] = []

    def __init__(self, mlp_tensors, dtype):
        self.dtype = dtype

    @classmethod
    def unavailable_reason(cls, device, precision):
        return None

    def set_mlp_tensors(self, mlp_tensors):
        pass

    def colors(self, plucker_rays):
        return torch.full((plucker_rays.shape[0], 3), 0.25, dtype=self.dtype)

    def render(self, cam2world, res, bounded):
        self.frames.append(("render", bounded))
        return torch.full((res.height, res.width, 3), 0.25)

    def render_rgba(self, cam2world, res, out, bounded):
        self.frames.append(("render_rgba", bounded))
        rgba = torch.full((res.height, res.width, 4), 0.25) if out is None else out.fill_(0.25)
        rgba[..., 3] = 1.0
        return rgba

    def depth_equations(self, cam2world, res, summed):
        # every pixel's equations say z = 2 (Σ a·b / Σ a² = 2), confidently
        n = res.pixels
        return torch.rand(n, 3), torch.full((n,), 2.0), torch.ones(n)


def test_fused_frames_and_fused_depth_are_the_backends(monkeypatch):
    monkeypatch.setitem(BACKENDS, FusedConstant.name, FusedConstant)
    monkeypatch.setattr(FusedConstant, "frames", [])
    renderer = LFNRenderer(tiny_lfn(), backend=FusedConstant.name)
    assert isinstance(renderer, Renderer) and isinstance(renderer.ray_backend, RayBackend)
    assert (renderer.render(POSE, RES) == 0.25).all()
    out = torch.zeros(RES, RES, 4)
    assert renderer.render_rgba(POSE, RES, out) is out
    assert FusedConstant.frames == [("render", True), ("render_rgba", True)]
    LFNRenderer(tiny_lfn(), backend=FusedConstant.name, bounded=False).render_rgba(POSE, RES)
    assert FusedConstant.frames[-1] == ("render_rgba", False)  # the renderer's bound goes along
    depth = gradient_depth(renderer, POSE, RES, window=1)
    assert depth.valid.all() and torch.allclose(depth.depth, torch.full((RES, RES), 2.0))
    # the benchmark labels the depth method by who computes it, from the capabilities alone
    assert depth_method(renderer).backend == FusedConstant.name
    assert depth_method(LFNRenderer(tiny_lfn(), backend="torchscript")).backend == "eager"


def test_the_command_line_offers_every_registered_backend():
    import main

    assert list(main.BACKEND_NAMES) == list(BACKENDS)


def test_an_exported_ray_program_saves_loads_and_computes_the_same_colors(tmp_path):
    model = tiny_lfn()
    tensors = tuple(t.detach() for t in model.specialize(model.latents.weight[1]))
    program = export_ray_function(tensors, torch.float32)
    save_ray_program(program, tmp_path / "lfn_rays.pt2")
    loaded = load_ray_program(tmp_path / "lfn_rays.pt2").module()
    rays = torch.randn(37, 6)  # another ray count than the export's example: the count is symbolic
    assert torch.allclose(loaded(rays, *tensors), ray_colors(rays, *tensors), atol=1e-6)


@pytest.mark.parametrize("name", ["torchscript", "export"])
def test_renderers_of_one_backend_and_precision_share_one_built_function(name):
    """A trace or an export is never freed (torch's compilation unit, dynamo's caches): renderers
    of tensors alike reuse the one built, each rendering its own weights through it."""
    first, second = tiny_lfn(seed=0), tiny_lfn(seed=1)
    a, b = LFNRenderer(first, backend=name), LFNRenderer(second, backend=name)
    assert a.ray_backend.function is b.ray_backend.function
    for model, renderer in ((first, a), (second, b)):
        eager = LFNRenderer(model, backend="eager").render(POSE, RES)
        assert torch.allclose(renderer.render(POSE, RES), eager, atol=1e-5)
    other_precision = LFNRenderer(first, precision="bf16", backend=name)
    assert other_precision.ray_backend.function is not a.ray_backend.function


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, "bf16"), (False, True, "bf16"),
                                                        (False, False, "fp32")])
def test_a_cpu_defaults_to_bf16_only_where_it_computes_bf16(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert default_precision(torch.device("cpu")) == expected
    assert default_precision(torch.device("cuda")) == "fp16"


def test_a_torch_without_the_cpu_helpers_defaults_to_fp32(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert default_precision(torch.device("cpu")) == "fp32"


def test_a_bounded_frame_evaluates_only_the_rays_that_meet_the_unit_sphere():
    model = tiny_lfn()
    bounded = LFNRenderer(model, backend="eager")
    every_ray = LFNRenderer(model, backend="eager", bounded=False)
    evaluated = []
    network = bounded.ray_backend.colors
    bounded.ray_backend.colors = lambda rays: evaluated.append(rays.shape[0]) or network(rays)
    inside = meets_unit_sphere(plucker(*frame_rays(POSE, WIDE, CPU))).view(32, 48)
    image, reference = bounded.render(POSE, WIDE), every_ray.render(POSE, WIDE)
    assert sum(evaluated) == inside.sum() < inside.numel()
    assert (image[~inside] == 1).all() and (reference[~inside] != 1).any()
    assert torch.allclose(image[inside], reference[inside], atol=1e-6)


def test_a_line_meets_the_unit_sphere_within_distance_one_of_its_center_wherever_its_origin():
    d = torch.tensor([1.0, 0.0, 0.0])
    for origin, meets in (((-5.0, 0.0, 0.0), True), ((3.0, 0.99, 0.0), True), ((0.0, 0.0, 1.01), False),
                          ((40.0, 0.0, -1.5), False)):
        for along in (0.0, 7.0):  # another point of the same line: the same answer
            o = torch.tensor(origin) + along * d
            assert bool(meets_unit_sphere(plucker(o, d))) is meets, (origin, along)
