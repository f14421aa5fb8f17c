"""The product's one camera convention, used by the data set, viewer, headless renders and fitting.

World: z is up, a car's length lies along x, the orbit target is the origin.
Orbit: azimuth in degrees from +x toward +y, elevation in degrees above the xy-plane,
radius = distance from the camera center to the target.
Cameras: pinhole, cam2world (4, 4) in the OpenCV convention (x right, y down, z forward),
pixel (i, j) = (column, row) has its center at (i + 0.5, j + 0.5).
Aspect: the field of view is vertical (DEFAULT_FOV_DEG over the frame's height) at every aspect,
with square pixels. A frame wider than it is tall widens horizontally: a W × H frame sees what the
H × H square frame sees in its central H columns, and more to each side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_RADIUS = 3.0
DEFAULT_FOV_DEG = 40.0
DEFAULT_AZIMUTH = 30.0
DEFAULT_ELEVATION = 20.0


@dataclass(frozen=True)
class Orbit:
    """A camera on a sphere around `target`, looking at it; angles in degrees."""

    azimuth: float = DEFAULT_AZIMUTH
    elevation: float = DEFAULT_ELEVATION
    radius: float = DEFAULT_RADIUS
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def cam2world(self) -> torch.Tensor:
        return orbit_pose(self.azimuth, self.elevation, self.radius, self.target)


def intrinsics(width: int, height: int, fov_y_deg: float = DEFAULT_FOV_DEG) -> torch.Tensor:
    """(3, 3) pinhole intrinsics in pixels for a vertical field of view, square pixels: the focal
    length follows the height alone, so a wider frame has a wider horizontal field of view."""
    focal = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
    return torch.tensor(
        [[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]], dtype=torch.float32
    )


def orbit_position(
    azimuth: float | torch.Tensor, elevation: float | torch.Tensor, radius: float | torch.Tensor
) -> torch.Tensor:
    """Camera center relative to the target, (3,) float32, on the device of a tensor angle.

    Angles may be tensors that require grad (pose refinement differentiates through this); the
    trigonometry runs in float64 so floats give the same values as Python's math.
    """
    az, el = _radians(azimuth, elevation)
    direction = torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)])
    if isinstance(radius, torch.Tensor):
        radius = radius.to(direction)
    return (radius * direction).float()


def _radians(azimuth: float | torch.Tensor, elevation: float | torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    # a number becomes a tensor by a fill on the device, not a copy from the host (which a CUDA
    # graph cannot capture)
    device = next((a.device for a in (azimuth, elevation) if isinstance(a, torch.Tensor)), None)
    return tuple(torch.deg2rad(a.to(torch.float64) if isinstance(a, torch.Tensor)
                               else torch.full((), a, dtype=torch.float64, device=device))
                 for a in (azimuth, elevation))


def orbit_pose(
    azimuth: float | torch.Tensor,
    elevation: float | torch.Tensor,
    radius: float | torch.Tensor = DEFAULT_RADIUS,
    target: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> torch.Tensor:
    """(4, 4) float32 cam2world of an orbit camera looking at `target` (OpenCV axes, world z up
    in image -y), on the device of a tensor angle.

    It reads nothing back from the device and copies nothing to it, so a fit that refines the
    angles can replay it from a CUDA graph: the cross products with the world's up axis (and, at
    the poles, with its y axis) are written out, not taken with constant vectors.
    """
    offset = orbit_position(azimuth, elevation, radius)
    center = torch.stack([offset.new_full((), t) for t in target])
    eye = center + offset
    forward = torch.nn.functional.normalize(center - eye, dim=0)
    zero = torch.zeros_like(forward[0])
    right = torch.stack([forward[1], -forward[0], zero])  # forward × z
    at_pole = torch.stack([-forward[2], zero, forward[0]])  # forward × y, where forward × z vanishes
    right = torch.nn.functional.normalize(torch.where(right.norm() < 1e-6, at_pole, right), dim=0)
    down = torch.linalg.cross(forward, right)
    columns = torch.stack([right, down, forward, eye], dim=1)
    return torch.cat([columns, torch.stack([zero, zero, zero, torch.ones_like(zero)])[None]])


def orbit_from_cam2world(
    cam2world: torch.Tensor, target: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> Orbit:
    """The orbit whose camera center is cam2world's (the inverse of Orbit.cam2world for a camera
    that looks at `target`, as every orbit camera does); azimuth in (-180, 180]."""
    offset = cam2world[:3, 3].double() - torch.tensor(target, dtype=torch.float64)
    radius = float(offset.norm())
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(offset[2]) / radius))))
    azimuth = math.degrees(math.atan2(float(offset[1]), float(offset[0])))
    return Orbit(azimuth, elevation, radius, target)


def rays_through_pixels(
    cam2world: torch.Tensor, intrinsics: torch.Tensor, cols: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space rays through pixel centers (cols + 0.5, rows + 0.5).

    cam2world (..., 4, 4) broadcasts against cols and rows (...); returns origins and unit
    directions, each (..., 3), in the dtype and on the device of `cam2world`.
    """
    k = intrinsics.to(device=cam2world.device, dtype=cam2world.dtype)
    cam_dirs = torch.stack(
        [(cols + 0.5 - k[0, 2]) / k[0, 0], (rows + 0.5 - k[1, 2]) / k[1, 1], torch.ones_like(cols)],
        dim=-1,
    )
    dirs = torch.einsum("...ij,...j->...i", cam2world[..., :3, :3], cam_dirs)
    origins = cam2world[..., :3, 3].expand_as(dirs)
    return origins, torch.nn.functional.normalize(dirs, dim=-1)


def pixel_rays(
    cam2world: torch.Tensor, intrinsics: torch.Tensor, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays through every pixel center of one camera: origins and unit directions, each (H, W, 3)."""
    device, dtype = cam2world.device, cam2world.dtype
    rows, cols = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return rays_through_pixels(cam2world, intrinsics, cols, rows)
