"""The volumetric field's fused Triton kernel (models/triton_field.py), run by Triton's CPU
interpreter at small widths; on a GPU the benchmark checks its frames against the dense eager
render (psnr_vs_dense) and bench/kernel_stats.py its compiled build."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import triton_interpreted_or_skip

triton = triton_interpreted_or_skip()  # the fixture below sets the switch again for each test

from models.cameras import orbit_pose  # noqa: E402 - after the skips
from models.folded_field import FoldedField  # noqa: E402
from models.occupancy import OccupancyGrid, build_occupancy, march  # noqa: E402
from models.renderer import frame_rays  # noqa: E402
from models.triton_field import TritonField  # noqa: E402
from models.volumetric import VolumetricConfig, VolumetricField, render_specialized  # noqa: E402

TOLERANCE = 1e-2  # fp16 operands against the fp32 network, relative


@pytest.fixture(autouse=True)
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def random_field(frequencies: int, width: int = 32) -> tuple[VolumetricField, tuple[torch.Tensor, ...]]:
    """A small volumetric field whose encoding matters: weights large enough that every input
    column moves the outputs."""
    torch.manual_seed(frequencies)
    model = VolumetricField(VolumetricConfig(num_instances=2, latent_dim=16, width=width, hidden_layers=3,
                                             cond_width=32, frequencies=frequencies)).eval()
    with torch.no_grad():
        for layer in model.net.layers:
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        model.latents.weight.normal_()
        return model, tuple(t.detach() for t in model.specialize(model.latents.weight[1]))


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.float() - ref.float()).norm() / ref.float().norm())


@pytest.mark.parametrize(("frequencies", "width"), [(2, 32), (6, 32), (6, 64)])
def test_the_kernel_evaluates_what_the_eager_network_does_at_any_samples(frequencies, width):
    _, tensors = random_field(frequencies, width)
    eager = FoldedField(tensors, frequencies)
    fused = FoldedField(tensors, frequencies, TritonField(tensors, frequencies))
    gen = torch.Generator().manual_seed(1)
    origins = torch.randn(9, 3, generator=gen) * 2.0
    dirs = torch.nn.functional.normalize(torch.randn(9, 3, generator=gen), dim=-1)
    rays = torch.randint(0, 9, (45,), generator=gen)  # 45 samples: the last tile is partial
    t = torch.rand(45, generator=gen) * 3.0
    density, rgb = fused.at_samples(origins, dirs, rays, t)
    expected_density, expected_rgb = eager.at_samples(origins, dirs, rays, t)
    assert density.shape == (45,) and rgb.shape == (45, 3) and density.dtype == torch.float32
    assert rel_err(density, expected_density) <= TOLERANCE and rel_err(rgb, expected_rgb) <= TOLERANCE
    # a sample is its ray's and distance's alone: reversed, each gives the same outputs (to the
    # rounding of products summed in other tiles)
    flipped = fused.at_samples(origins, dirs, rays.flip(0), t.flip(0))[0]
    assert torch.allclose(flipped.flip(0), density, rtol=1e-5, atol=1e-6)
    # the grid's probe is a sample at distance 0 from its point
    at_zero = fused.at_samples(origins, dirs, torch.arange(9), torch.zeros(9))[0]
    assert torch.allclose(fused.density(origins, dirs), at_zero, rtol=1e-5, atol=1e-6)
    assert fused.at_samples(origins, dirs, rays[:0], t[:0])[0].shape == (0,)


def test_dense_and_accelerated_renders_through_the_kernel_match_the_eager_ones():
    model, tensors = random_field(2)
    samples = model.config.samples_per_ray
    eager, fused = FoldedField(tensors, 2), FoldedField(tensors, 2, TritonField(tensors, 2))
    origins, dirs = frame_rays(orbit_pose(40.0, 25.0, 3.0), 6, torch.device("cpu"))
    dense = render_specialized(origins, dirs, eager, samples)
    assert (render_specialized(origins, dirs, fused, samples)[0] - dense[0]).abs().max() <= TOLERANCE
    grid = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    marched = march(origins, dirs, fused, samples, grid)
    assert (marched.color - march(origins, dirs, eager, samples, grid).color).abs().max() <= TOLERANCE
    assert (marched.color - dense[0]).abs().max() <= TOLERANCE
    built = build_occupancy(fused.density, 8, torch.device("cpu"))
    assert torch.equal(built.occupied, build_occupancy(eager.density, 8, torch.device("cpu")).occupied)


def test_networks_the_kernel_cannot_run_are_refused():
    _, tensors = random_field(2)
    with pytest.raises(ValueError, match="needs 42 inputs"):
        TritonField(tensors, 6)
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        TritonField(tensors, 2, dtype=torch.float32)
    fused = TritonField(tensors, 2)
    w_in, b_in, w_hidden, b_hidden, w_out, b_out = tensors
    with pytest.raises(ValueError, match="hidden weights"):
        fused.mlp.set((w_in, b_in, w_hidden[:1], b_hidden[:1], w_out, b_out))  # its packed buffers
