import math

import torch

from models.cameras import intrinsics, orbit_pose, pixel_rays
from models.plucker import plucker


def test_plucker_is_invariant_to_the_origin_along_the_ray():
    origins, dirs = torch.randn(100, 3), torch.randn(100, 3)
    shifted = origins + torch.randn(100, 1) * 5 * torch.nn.functional.normalize(dirs, dim=-1)
    assert torch.allclose(plucker(origins, dirs), plucker(shifted, dirs), atol=1e-5)
    assert torch.allclose(plucker(origins, dirs)[:, :3].norm(dim=-1), torch.ones(100))


def test_pixel_ray_direction_matches_a_hand_computation():
    # 4x4 image, fov 90: focal = 2, center 2. Pixel (col 3, row 0) has center (3.5, 0.5).
    pose = torch.eye(4)
    origins, dirs = pixel_rays(pose, intrinsics(4, 4, fov_y_deg=90.0), 4, 4)
    expected = torch.tensor([(3.5 - 2) / 2, (0.5 - 2) / 2, 1.0])
    assert torch.allclose(dirs[0, 3], expected / expected.norm(), atol=1e-6)
    assert torch.equal(origins[0, 3], torch.zeros(3))


def test_orbit_zero_looks_from_plus_x_with_z_up_in_image_minus_y():
    pose = orbit_pose(0.0, 0.0, 3.0)
    right, down, forward, eye = pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3]
    assert torch.allclose(eye, torch.tensor([3.0, 0, 0]), atol=1e-6)
    assert torch.allclose(forward, torch.tensor([-1.0, 0, 0]), atol=1e-6)
    assert torch.allclose(down, torch.tensor([0, 0, -1.0]), atol=1e-6)  # world z up = image -y
    assert torch.allclose(right, torch.tensor([0, 1.0, 0]), atol=1e-6)
    # The top-center pixel's ray points upward (positive z).
    _, dirs = pixel_rays(pose, intrinsics(8, 8), 8, 8)
    assert dirs[0, 4, 2] > 0 and dirs[7, 4, 2] < 0


def test_orbit_azimuth_and_elevation_follow_the_convention():
    eye = orbit_pose(90.0, 30.0, 2.0)[:3, 3]
    expected = 2.0 * torch.tensor([0.0, math.cos(math.radians(30)), math.sin(math.radians(30))])
    assert torch.allclose(eye, expected, atol=1e-6)
    pose = orbit_pose(45.0, 89.9)
    assert torch.allclose(pose[:3, :3] @ pose[:3, :3].T, torch.eye(3), atol=1e-5)


def test_a_wider_frame_keeps_the_vertical_field_of_view_and_sees_more_to_the_sides():
    # models/cameras.py: the field of view is vertical; W × H sees what H × H sees in its central
    # H columns. 48 - 32 = 16 columns more, 8 on each side.
    pose = orbit_pose(30.0, 20.0, 3.0)
    _, square = pixel_rays(pose, intrinsics(32, 32), 32, 32)
    _, wide = pixel_rays(pose, intrinsics(48, 32), 48, 32)
    assert wide.shape == (32, 48, 3)
    assert torch.allclose(wide[:, 8:40], square, atol=1e-6)
    # The top-left rays in camera space: the same slope up, and sideways 23.5 pixels from the
    # center instead of 15.5, at the same focal length.
    def slopes(ray: torch.Tensor) -> tuple[float, float]:  # camera x / z and y / z
        x, y, z = (pose[:3, :3].T @ ray).tolist()
        return x / z, y / z

    (square_x, square_y), (wide_x, wide_y) = slopes(square[0, 0]), slopes(wide[0, 0])
    assert math.isclose(wide_y, square_y, rel_tol=1e-5)
    assert math.isclose(wide_x, square_x * 23.5 / 15.5, rel_tol=1e-5)


def test_orbit_pose_is_defined_at_the_poles_and_differentiable_in_its_angles():
    top = orbit_pose(30.0, 90.0, 2.0)
    assert torch.isfinite(top).all()
    assert torch.allclose(top[:3, :3] @ top[:3, :3].T, torch.eye(3), atol=1e-6)
    assert torch.allclose(top[:3, 2], torch.tensor([0.0, 0, -1]), atol=1e-6)  # looking straight down
    angles = torch.tensor([30.0, 20.0], requires_grad=True)
    pose = orbit_pose(angles[0], angles[1], 3.0, (0.1, -0.2, 0.3))
    assert torch.allclose(pose, orbit_pose(30.0, 20.0, 3.0, (0.1, -0.2, 0.3)), atol=1e-6)
    assert torch.allclose(pose[:3, 3] - torch.tensor([0.1, -0.2, 0.3]),
                          3.0 * -pose[:3, 2], atol=1e-5)  # it looks at its target
    pose[:3, 3].sum().backward()
    assert angles.grad is not None and angles.grad.abs().sum() > 0
