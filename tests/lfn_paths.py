"""Checks that every path evaluating an LFN agrees with the module, shared by the tests of its
optional parts (Fourier features of the rays, generated weight changes)."""

import torch

from models.lfn import LFNConfig, LightFieldNetwork
from models.plucker import plucker
from models.renderer import LFNRenderer

TINY = dict(width=32, hidden_layers=3, latent_dim=8, cond_width=16)


def random_lfn(instances: int = 3, seed: int = 0, **options) -> LightFieldNetwork:
    """A float64 TINY LFN with LFNConfig `options`, every parameter drawn N(0, 0.3²): FiLM and
    any generated change away from their start, colors away from 0.5."""
    torch.manual_seed(seed)
    model = LightFieldNetwork(LFNConfig(num_instances=instances, **TINY, **options))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    return model.double()


def random_rays(objects: int, n: int) -> torch.Tensor:
    """(objects, n, 6) float64 Plücker rays from a sphere of radius 3 toward the origin's vicinity."""
    gen = torch.Generator().manual_seed(1)
    origins = 3 * torch.nn.functional.normalize(torch.randn(objects, n, 3, generator=gen), dim=-1)
    targets = 0.5 * torch.randn(objects, n, 3, generator=gen)
    return plucker(origins, targets - origins).double()


def assert_folded_forward_and_derivatives_match(model: LightFieldNetwork) -> None:
    """A float64 model with 3 instances: the folded forward equals the module, and the colors'
    derivatives along tangents of the first 4 rays equal torch.func.jvp's."""
    rays, latents = random_rays(3, 10), model.latents.weight
    colors = model.plucker_colors(rays, latents)
    assert torch.allclose(model.plucker_colors(rays, latents, folded=True), colors)
    tangents = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    with_derivatives, derivatives = model.colors_with_derivatives(rays, tangents, latents)
    assert torch.allclose(with_derivatives, colors)
    for i in range(2):
        _, expected = torch.func.jvp(
            lambda head: model.plucker_colors(torch.cat([head, rays[:, 4:]], 1), latents)[:, :4],
            (rays[:, :4],), (tangents[i],))
        assert torch.allclose(derivatives[i], expected)


def assert_cpu_backend_renders_the_module(model: LightFieldNetwork, backend: str) -> None:
    """A float32 model with 3 instances: `backend` renders each specialized code as the module."""
    renderer = LFNRenderer(model, "cpu", "fp32", backend, bounded=False)
    rays = random_rays(1, 64)[0].float()
    for index in range(3):
        renderer.set_latent(model.latents.weight[index])
        expected = model.plucker_colors(rays[None], model.latents.weight[index:index + 1])[0]
        assert torch.allclose(renderer.colors(rays), expected, atol=1e-5)
