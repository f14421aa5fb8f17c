import torch

from models.backends.torchscript import trace_ray_function
from models.cameras import orbit_pose
from models.plucker import plucker
from models.renderer import LFNRenderer, frame_rays
from tests.conftest import tiny_lfn


def test_specialized_network_equals_the_conditioned_model():
    model = tiny_lfn()
    latent = torch.randn(model.config.latent_dim)
    rays = plucker(*frame_rays(orbit_pose(10, 25), 24, "cpu"))
    with torch.no_grad():
        reference = model.plucker_colors(rays[None], latent[None])[0]
    renderer = LFNRenderer(model, backend="eager")
    renderer.set_latent(latent)
    assert (renderer.colors(rays) - reference).abs().max() <= 1e-5


def test_torchscript_path_equals_eager_and_swapping_latents_does_not_retrace():
    model = tiny_lfn()
    traced = LFNRenderer(model, backend="torchscript")
    eager = LFNRenderer(model, backend="eager")
    function = traced.ray_backend.function
    pose = orbit_pose(30, 20)
    for instance in range(3):
        latent = model.latents.weight[instance]
        traced.set_latent(latent)
        eager.set_latent(latent)
        assert (traced.render(pose, 20) - eager.render(pose, 20)).abs().max() <= 1e-5
    assert traced.ray_backend.function is function


def test_torchscript_save_and_load_round_trip(tmp_path):
    model = tiny_lfn()
    renderer = LFNRenderer(model, backend="eager")
    rays = torch.randn(50, 6)
    traced = trace_ray_function(rays, renderer.folded_mlp())
    traced.save(str(tmp_path / "rays.ts"))
    loaded = torch.jit.load(str(tmp_path / "rays.ts"))
    fresh = torch.randn(70, 6)
    assert (loaded(fresh, *renderer.folded_mlp()) - renderer.colors(fresh)).abs().max() <= 1e-5


def test_different_instances_render_different_images():
    model = tiny_lfn()
    renderer = LFNRenderer(model)
    pose = orbit_pose(30, 20)
    renderer.set_latent(model.latents.weight[0])
    first = renderer.render(pose, 16)
    renderer.set_latent(model.latents.weight[1])
    assert (renderer.render(pose, 16) - first).abs().max() > 1e-3
