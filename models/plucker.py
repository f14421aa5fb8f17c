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
