"""A car given by its FiLM modulations: the LFN, the renderer and the evaluation treat it as the
latent it came from, and refining it from a photo reaches what no latent reaches."""

import pytest
import torch

from models.cameras import intrinsics, orbit_pose
from models.fitting import fit_latent
from models.modulation_fit import refine_modulations
from models.renderer import LFNRenderer
from tests.conftest import tiny_lfn

RES = 16


def test_a_latents_modulations_render_as_the_latent():
    model = tiny_lfn()
    latents = model.latents.weight
    origins = 3 * torch.nn.functional.normalize(torch.randn(3, 20, 3), dim=-1)
    dirs = torch.randn(3, 20, 3)
    modulations = model.modulations(latents)
    assert modulations.shape == (3, 2 * model.net.hidden_layers * model.net.width)
    assert torch.allclose(model.modulated_colors(origins, dirs, modulations), model(origins, dirs, latents))
    for index in range(3):
        a, b = model.specialize(latents[index]), model.specialize_modulations(modulations[index])
        assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b, strict=True))
    renderer = LFNRenderer(model, "cpu", "fp32", "eager")
    pose = orbit_pose(30.0, 20.0, 3.0)
    renderer.set_latent(latents[1])
    from_latent = renderer.render(pose, RES).clone()
    renderer.set_latent(latents[1], torch.zeros_like(modulations[1]))
    assert torch.allclose(renderer.render(pose, RES), from_latent, atol=1e-5)
    renderer.set_latent(latents[1], modulations[2] - modulations[1])  # car 2's modulations
    as_car_two = renderer.render(pose, RES).clone()
    assert not torch.allclose(as_car_two, from_latent, atol=1e-3)
    renderer.set_latent(latents[2])
    assert torch.allclose(renderer.render(pose, RES), as_car_two, atol=1e-5)


def photo_of(model, latent: torch.Tensor, offset: torch.Tensor | None, pose: torch.Tensor
             ) -> torch.Tensor:
    renderer = LFNRenderer(model, "cpu", "fp32", "eager", bounded=False)
    renderer.set_latent(latent, offset)
    return (renderer.render(pose, RES).float() * 255).round().to(torch.uint8)


def test_refining_the_modulations_fits_a_photo_no_latent_reaches():
    model = tiny_lfn()
    latent = model.latents.weight[0].detach()
    with torch.no_grad():  # a car off the latents' reach: a training car's modulations, scrambled
        scramble = 0.3 * torch.randn_like(model.modulations(latent[None])[0])
    pose = orbit_pose(40.0, 15.0, 3.0)[None]
    photo = photo_of(model, latent, scramble, pose[0])[None]
    k = intrinsics(RES, RES)
    fit = fit_latent(model, photo, pose, k, steps=150, mirror_weight=0.0, rays_per_step=256)
    refined = refine_modulations(model, photo, pose, k, fit.latent, steps=150, lr=1e-2,
                                 mirror_weight=0.0, rays_per_step=256)
    target_image = photo[0].float() / 255

    def error(image: torch.Tensor) -> float:
        return (image.float() / 255 - target_image).square().mean().item()

    latent_error = error(photo_of(model, fit.latent, None, pose[0]))
    refined_error = error(photo_of(model, fit.latent, refined, pose[0]))
    assert refined_error < 0.7 * latent_error
    # the penalty keeps the refined car near the latent's modulations
    near = refine_modulations(model, photo, pose, k, fit.latent, steps=150, lr=1e-2, weight=1e4,
                              mirror_weight=0.0, rays_per_step=256)
    assert near.norm() < 0.2 * refined.norm()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_replayed_modulation_steps_follow_the_eager_ones():
    model = tiny_lfn().cuda()
    latent = model.latents.weight[0].detach()
    pose = orbit_pose(40.0, 15.0, 3.0)[None]
    photo = torch.randint(0, 256, (1, RES, RES, 3), dtype=torch.uint8)
    eager, graphed = (refine_modulations(model, photo, pose, intrinsics(RES, RES), latent, steps=12,
                                         rays_per_step=64, cuda_graph=flag) for flag in (False, True))
    assert eager.abs().max() > 0  # the steps moved the offset
    assert torch.allclose(eager, graphed, atol=1e-4, rtol=1e-4)
