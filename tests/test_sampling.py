"""Ray batches from posed images (models/sampling.py)."""

import torch

from models.cameras import intrinsics, orbit_pose
from models.sampling import draw_pixels, rays_at_pixels, sample_rays


def test_a_one_view_pool_broadcasts_its_camera_to_the_same_rays_and_gradients_as_a_gather():
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8, generator=generator)
    poses = torch.stack([orbit_pose(azimuth, 20.0, 3.0) for azimuth in (10.0, 50.0, 90.0)])
    cameras = torch.stack([poses, poses.flip(0)])  # (objects, views, 4, 4)
    pixels = draw_pixels(1, 8, 8, (2, 16), torch.device("cpu"), generator)
    weights = torch.randn(2, 16, 6, generator=generator)

    def rays_and_gradient(view_pool: torch.Tensor):
        cam2world = cameras.clone().requires_grad_(True)
        origins, dirs, target = rays_at_pixels(rgb, cam2world, intrinsics(8, 8), view_pool, pixels)
        (torch.cat([origins, dirs], -1) * weights).sum().backward()
        return origins, dirs, target, cam2world.grad

    # the pool [2] broadcasts view 2's camera; [2, 2] names the same view twice and is gathered per ray
    broadcast, gathered = rays_and_gradient(torch.tensor([2])), rays_and_gradient(torch.tensor([2, 2]))
    assert broadcast[0].shape == broadcast[1].shape == broadcast[2].shape == (2, 16, 3)
    for got, expected in zip(broadcast, gathered, strict=True):
        torch.testing.assert_close(got, expected)
    assert broadcast[3][:, 2].abs().sum() > 0 and broadcast[3][:, :2].abs().sum() == 0


def test_each_object_may_draw_from_a_view_pool_of_its_own():
    generator = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 4, 8, 8, 3), dtype=torch.uint8, generator=generator)
    poses = torch.stack([orbit_pose(azimuth, 20.0, 3.0) for azimuth in (10.0, 50.0, 90.0, 130.0)])
    cameras = poses.expand(3, 4, 4, 4)
    objects, pools = torch.tensor([2, 0]), torch.tensor([[1, 3], [2, 2]])  # object 2: views 1, 3
    origins, _, target = sample_rays(rgb, cameras, intrinsics(8, 8), pools, 64, generator,
                                     objects=objects)
    assert origins.shape == target.shape == (2, 64, 3)
    for b, (car, pool) in enumerate(zip(objects.tolist(), pools.tolist(), strict=True)):
        own = torch.stack([cameras[car, v, :3, 3] for v in pool])  # the pool's camera centers
        seen = (origins[b, :, None] - own).norm(dim=-1).min(-1).values
        assert seen.max() < 1e-5  # every ray leaves one of its own pool's cameras
        colors = rgb[car, pool].reshape(-1, 3).float() / 255
        assert all((colors == c).all(-1).any() for c in target[b])  # and sees its views' pixels
    assert (origins[0] - cameras[2, 1, :3, 3]).norm(dim=-1).lt(1e-5).any()
    assert (origins[0] - cameras[2, 3, :3, 3]).norm(dim=-1).lt(1e-5).any()  # both of its views
