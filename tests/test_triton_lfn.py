"""The fused Triton LFN kernel, run by Triton's CPU interpreter at small widths.

Skipped where triton is not installed (CI); on a GPU machine bench/gpu_check.py checks the
compiled kernel at the product's size. The interpreter needs every tl.dot dimension ≥ 16, so
the widths here are 32 and 64 and tiles are 16 rays.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import triton_interpreted_or_skip

triton = triton_interpreted_or_skip()  # the fixture below sets the switch again for each test

from models.cameras import Orbit, orbit_pose  # noqa: E402 - after the skips
from models.checkpoint import load_checkpoint  # noqa: E402
from models.depth import color_derivatives, gradient_depth, pixel_equations, pool_equations  # noqa: E402
from models.lfn import LFNConfig, LightFieldNetwork, ray_colors  # noqa: E402
from models.plucker import meets_unit_sphere, plucker  # noqa: E402
from models.renderer import LFNRenderer, frame_rays  # noqa: E402
from models.renderer_protocol import RayBackend, Renderer  # noqa: E402
from models.resolution import Resolution  # noqa: E402
from models.triton_lfn import INTERPRETER_META, TritonLFN, triton_available  # noqa: E402
from models.triton_pool import pooled_solve  # noqa: E402

TOLERANCE = 1e-2
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "cars.pt"
POISON = -7.0  # colors and alpha are never negative
# Wider than tall, 133 rays (the last 16-ray tile partial): a kernel that split a ray's index into
# column and row by the height, or assumed a square, would shear or cut the picture.
NON_SQUARE = Resolution(19, 7)


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def random_lfn(width: int, seed: int = 0) -> LightFieldNetwork:
    """A small LFN whose latents, FiLM modulation and head all matter (colors not all ≈ 0.5)."""
    torch.manual_seed(seed)
    model = LightFieldNetwork(
        LFNConfig(num_instances=3, latent_dim=16, width=width, hidden_layers=3, cond_width=32)
    )
    with torch.no_grad():
        for layer in model.net.layers:
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        model.net.conditioning[-1].weight.normal_(std=0.1)
        model.net.head.weight.mul_(4.0)
        model.latents.weight.normal_()
    return model.eval()


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref).norm() / ref.norm())


def random_rays(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return plucker(torch.randn(n, 3, generator=gen) * 3.0, torch.randn(n, 3, generator=gen))


# bfloat16 operands are checked on the GPU only (bench/gpu_check.py): Triton 3.6's interpreter
# multiplies bf16 tl.dot operands as raw integers.
@pytest.mark.parametrize(("width", "chunks"), [(32, 2), (64, 2), (64, 4)])
def test_colors_match_the_fp32_network_on_random_rays(monkeypatch, width, chunks):
    monkeypatch.setitem(INTERPRETER_META, "CHUNKS", chunks)
    model = random_lfn(width)
    fused = None
    for seed in range(3):
        tensors = model.specialize(torch.randn(model.config.latent_dim))
        if fused is None:
            fused = TritonLFN(tensors)
        fused.set_mlp_tensors(tensors)
        rays = random_rays(53, seed)  # not a multiple of the 16-ray tile
        with torch.no_grad():
            ref = ray_colors(rays, *tensors)
        out = fused.colors(rays)
        assert out.shape == (53, 3) and out.dtype == torch.float16
        assert not out.isnan().any()
        assert rel_err(out, ref) <= TOLERANCE


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.float32])
def test_fused_frame_matches_the_eager_renderer_and_writes_every_pixel(out_dtype):
    model = random_lfn(32)
    eager = LFNRenderer(model, backend="eager")
    fused = TritonLFN(eager.folded_mlp())
    res = 13  # 169 rays: the last tile is partial
    for instance, (azimuth, elevation) in enumerate([(30, 20), (200, -5), (95, 60)]):
        eager.set_latent(model.latents.weight[instance])
        fused.set_mlp_tensors(eager.folded_mlp())
        pose = orbit_pose(azimuth, elevation, 2.8)
        out = torch.full((res * res, 4), POISON, dtype=out_dtype)
        result = fused.render_rgba(pose, res, out=out)
        assert result.data_ptr() == out.data_ptr()
        assert not (out == POISON).any() and not out.isnan().any()
        assert (out[:, 3] == 1).all()
        assert rel_err(out[:, :3], eager.render(pose, res).view(-1, 3)) <= TOLERANCE


def test_render_gives_the_renderer_interface():
    model = random_lfn(32)
    eager = LFNRenderer(model, backend="eager")
    fused = TritonLFN(eager.folded_mlp())
    pose = orbit_pose(30, 20)
    image = fused.render(pose, 10)
    assert image.shape == (10, 10, 3) and image.dtype == torch.float16
    assert rel_err(image, eager.render(pose, 10)) <= TOLERANCE
    assert rel_err(fused.render_rgba(pose, 10).view(10, 10, 4)[..., :3], eager.render(pose, 10)) <= TOLERANCE


def test_a_new_latent_reuses_the_weight_buffers():
    model = random_lfn(32)
    eager = LFNRenderer(model, backend="eager")
    fused = TritonLFN(eager.folded_mlp())
    buffers = [t.data_ptr() for t in fused.mlp.tensors]
    pose = orbit_pose(30, 20)
    first = fused.render(pose, 8)
    eager.set_latent(model.latents.weight[2])
    fused.set_mlp_tensors(eager.folded_mlp())
    assert [t.data_ptr() for t in fused.mlp.tensors] == buffers
    second = fused.render(pose, 8)
    assert (second.float() - first.float()).abs().max() > 1e-2
    assert rel_err(second, eager.render(pose, 8)) <= TOLERANCE


def test_shapes_the_kernel_cannot_run_are_refused():
    tensors = random_lfn(32).specialize(torch.zeros(16))
    w_in, b_in, w_hidden, b_hidden, w_out, b_out = tensors
    with pytest.raises(ValueError, match="power-of-two width"):
        TritonLFN((w_in[:24], b_in[:24], w_hidden[:, :24, :24], b_hidden[:, :24], w_out[:, :24], b_out))
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        TritonLFN(tensors, dtype=torch.float32)
    fused = TritonLFN(tensors)
    with pytest.raises(ValueError, match="hidden weights"):
        fused.set_mlp_tensors((w_in, b_in, w_hidden[:1], b_hidden[:1], w_out, b_out))
    with pytest.raises(ValueError, match="contiguous float16/float32"):
        fused.render_rgba(orbit_pose(30, 20), 8, out=torch.empty(8 * 8, 3))
    for wrong in (torch.empty(8 * 8, 4), torch.empty(8 * 8, 5, dtype=torch.float16),
                  torch.empty(5, 8 * 8).t()):
        with pytest.raises(ValueError, match=r"contiguous float32 tensor of shape \(64, 5\)"):
            fused.depth_equations(orbit_pose(30, 20), 8, out=wrong)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only answer")
def test_triton_available_says_why_not_on_a_cpu_machine():
    assert triton_available() == (False, "no CUDA device")


@pytest.mark.parametrize("summed", [True, False])
@pytest.mark.parametrize(("width", "chunks"), [(64, 2), (128, 4), (128, 2)])
def test_depth_equations_match_the_eager_forward_mode_pass(monkeypatch, width, chunks, summed):
    # The color pass stores its ReLU masks as bit words, the reverse passes read them back:
    # a mask word in the wrong place or order would change Σ a·b and Σ a².
    monkeypatch.setitem(INTERPRETER_META, "CHUNKS", chunks)
    model = random_lfn(width)
    eager = LFNRenderer(model, backend="eager")
    fused = TritonLFN(eager.folded_mlp())
    for instance, (azimuth, elevation, res) in enumerate([(30, 20, 11), (250, 45, 8)]):
        eager.set_latent(model.latents.weight[instance])
        fused.set_mlp_tensors(eager.folded_mlp())
        pose = orbit_pose(azimuth, elevation, 2.8)
        with torch.no_grad():
            color, derivatives = color_derivatives(eager, pose, res)
        ab, aa = pixel_equations(derivatives, summed)
        out = fused.depth_equations(pose, res, summed)
        assert out.shape == (res * res, 5) and not out.isnan().any()
        assert rel_err(out[:, :3], color) <= TOLERANCE
        # fp16 activations can flip a ReLU gate that sits at ≈ 0 and change that one pixel's
        # derivative (models/depth.py); wrong mask words would change most pixels.
        for fast, reference in ((out[:, 3], ab), (out[:, 4], aa)):
            close = (fast - reference).abs() <= 0.01 * reference.abs() + 1e-4
            assert close.float().mean() >= 0.95


@pytest.mark.parametrize("summed", [True, False])
def test_saturated_tiles_skip_the_reverse_passes_with_the_same_equations(summed):
    # The shipped car at 16²: its white background saturates the sigmoids to exactly 1, so whole
    # tiles of rays skip the reverse passes and must write what the passes would have, zero
    # equations (bit for bit what running them gives), while tiles with one live ray run them.
    ckpt = load_checkpoint(SHIPPED)
    eager = LFNRenderer(ckpt.model, backend="eager")
    eager.set_latent(ckpt.latents[0])
    fused = TritonLFN(eager.folded_mlp())
    res, tile = 16, INTERPRETER_META["BLOCK_M"]
    pose = Orbit().cam2world()
    with torch.no_grad():
        _, derivatives = color_derivatives(eager, pose, res)
    ab, aa = pixel_equations(derivatives, summed)
    out = torch.full((res * res, 5), float("nan"))  # every value must be written
    assert fused.depth_equations(pose, res, summed, out=out).data_ptr() == out.data_ptr()
    assert not out.isnan().any()
    assert torch.equal(out, fused.depth_equations(pose, res, summed, skip_saturated=False))
    color = out[:, :3]
    dead = ((color * (1 - color)).amax(1).view(-1, tile).amax(1) == 0).repeat_interleave(tile)
    assert 0 < dead.sum() < dead.numel(), "the view needs both kinds of tile"
    assert (out[dead, 3:] == 0).all()
    # No pixel with something to say lost it, and the ones kept are right. (The trained car's
    # silhouettes at 16² flip more fp16 ReLU gates than the random networks above: ~11 % of these
    # pixels differ by 1-4 %, the median by nothing.)
    speaks = aa > 1e-2
    assert speaks.sum() >= 20 and not (speaks & dead).any()
    assert (out[speaks, 4] > 0).all()
    for fast, reference in ((out[speaks, 3], ab[speaks]), (out[speaks, 4], aa[speaks])):
        assert ((fast - reference).abs() / reference.abs()).median() <= 0.01


def test_the_triton_backend_renders_the_eager_image_through_the_renderer():
    model = random_lfn(32)
    fused = LFNRenderer(model, precision="fp16", backend="triton")
    eager = LFNRenderer(model, backend="eager")
    assert isinstance(fused, Renderer) and isinstance(fused.ray_backend, RayBackend)
    assert fused.capabilities.fused_frames and not fused.capabilities.cuda_graphs
    res, pose = 11, orbit_pose(120, 15, 2.8)
    for instance in range(2):
        fused.set_latent(model.latents.weight[instance])
        eager.set_latent(model.latents.weight[instance])
        reference = eager.render(pose, res)
        image = fused.render(pose, res)
        assert image.shape == (res, res, 3) and rel_err(image, reference) <= TOLERANCE
        out = torch.full((res, res, 4), POISON)
        assert fused.render_rgba(pose, res, out).data_ptr() == out.data_ptr()  # no copy
        assert rel_err(out[..., :3], reference) <= TOLERANCE and (out[..., 3] == 1).all()


def test_gradient_depth_through_the_triton_backend_matches_the_eager_one():
    model = random_lfn(64)  # the interpreter's 2 column blocks of 32: whole mask words
    fused = LFNRenderer(model, precision="fp16", backend="triton")
    eager = LFNRenderer(model, backend="eager")
    pose = orbit_pose(60, 25, 2.8)
    fast, reference = gradient_depth(fused, pose, 16), gradient_depth(eager, pose, 16)
    both = fast.valid & reference.valid
    assert both.float().mean() >= 0.9 * reference.valid.float().mean()
    assert rel_err(fast.depth[both], reference.depth[both]) <= 2 * TOLERANCE


# 169 pixels: the last block is partial, and every border is replicated; and a non-square frame
@pytest.mark.parametrize("res", [Resolution.square(13), NON_SQUARE], ids=str)
@pytest.mark.parametrize("window", [3, 5])
def test_pooled_solve_kernel_matches_the_torch_pooling(window, res):
    gen = torch.Generator().manual_seed(window)
    color = torch.rand(res.pixels, 3, generator=gen)
    color[: res.pixels // 2] = 0.5  # a flat region beside a textured one: weights near 1 and near 0
    ab, aa = torch.randn(res.pixels, generator=gen), torch.rand(res.pixels, generator=gen)
    equations = torch.cat([color, ab[:, None], aa[:, None]], 1)
    depth, confidence = pooled_solve(equations, res, window, color_sigma=0.1)
    pooled_ab, pooled_aa = pool_equations(color, ab, aa, res, window, color_sigma=0.1)
    assert torch.allclose(confidence, pooled_aa, rtol=1e-5, atol=1e-6)
    assert torch.allclose(depth, pooled_ab / pooled_aa.clamp(min=1e-12), rtol=1e-4, atol=1e-5)


def test_non_square_frames_and_depth_equations_match_the_eager_ones():
    model = random_lfn(64)  # the interpreter's 2 column blocks of 32: whole mask words
    fused = LFNRenderer(model, precision="fp16", backend="triton")
    eager = LFNRenderer(model, backend="eager")
    pose = orbit_pose(120, 15, 2.8)
    reference = eager.render(pose, NON_SQUARE)
    image = fused.render(pose, NON_SQUARE)
    assert image.shape == (7, 19, 3) and rel_err(image, reference) <= TOLERANCE
    out = torch.full((7, 19, 4), POISON)
    assert fused.render_rgba(pose, NON_SQUARE, out).data_ptr() == out.data_ptr()
    assert rel_err(out[..., :3], reference) <= TOLERANCE and (out[..., 3] == 1).all()
    with torch.no_grad():
        color, derivatives = color_derivatives(eager, pose, NON_SQUARE)
    ab, aa = pixel_equations(derivatives)
    equations = fused.ray_backend.kernel.depth_equations(pose, NON_SQUARE)
    assert equations.shape == (NON_SQUARE.pixels, 5) and rel_err(equations[:, :3], color) <= TOLERANCE
    for fast, slow in ((equations[:, 3], ab), (equations[:, 4], aa)):  # see the square test above
        close = (fast - slow).abs() <= 0.01 * slow.abs() + 1e-4
        assert close.float().mean() >= 0.95


@pytest.mark.parametrize("block", [16, 64])  # frame tiles of 16 × 1 and of 16 × 4 pixels
def test_a_bounded_frame_is_white_outside_the_unit_sphere_and_the_network_inside(monkeypatch, block):
    monkeypatch.setitem(INTERPRETER_META, "BLOCK_M", block)
    model = random_lfn(32)
    every_ray = LFNRenderer(model, backend="eager", bounded=False)
    fused = TritonLFN(every_ray.folded_mlp())
    res, pose = Resolution(40, 18), orbit_pose(30, 20, 3.0)  # tiles inside, across and outside the sphere
    inside = meets_unit_sphere(plucker(*frame_rays(pose, res, torch.device("cpu"))))
    assert 0.2 < inside.float().mean() < 0.8
    reference = every_ray.render(pose, res).view(-1, 3)
    out = torch.full((res.pixels, 4), POISON)
    fused.render_rgba(pose, res, out=out)
    assert (out[~inside] == 1).all() and (out[:, 3] == 1).all()
    assert rel_err(out[inside, :3], reference[inside]) <= TOLERANCE
    # the network's own colors outside the sphere are not white: the bound is what whitened them
    every = fused.render_rgba(pose, res, bounded=False)
    assert rel_err(every[:, :3], reference) <= TOLERANCE and (every[~inside, :3] - 1).abs().min() > 0.01
