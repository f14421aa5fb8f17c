"""Rays to 6-D Plücker coordinates (d, o × d), the LFN's input."""

from __future__ import annotations

import torch


def plucker(origins: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """(..., 3) origins and directions → (..., 6) Plücker coordinates with unit direction.

    The moment o × d is the same for every point o on the ray, so the coordinates name the ray,
    not a point on it.
    """
    d = torch.nn.functional.normalize(dirs, dim=-1)
    return torch.cat([d, torch.linalg.cross(origins, d, dim=-1)], dim=-1)


def meets_unit_sphere(rays: torch.Tensor) -> torch.Tensor:
    """(..., 6) Plücker rays (unit direction) → (...,) bool: the ray's line passes within the unit
    sphere, which holds every object of the data set (radius 0.95, tools/mesh.py), so a ray that
    does not sees only the white background. The moment's length |o × d| is the line's distance
    from the origin: like the LFN's colors, the test depends on the line alone."""
    return rays[..., 3:].square().sum(-1) < 1.0
