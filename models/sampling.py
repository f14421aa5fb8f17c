"""Random ray batches from posed images: what training and latent fitting draw each step."""

from __future__ import annotations

import torch

from models.cameras import rays_through_pixels


def sample_rays(
    rgb: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor,
    view_pool: torch.Tensor, rays_per_object: int, generator: torch.Generator | None = None,
    objects: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw `rays_per_object` random pixels from the views in `view_pool` of each object.

    rgb (C, V, H, W, 3) uint8, cam2world (C, V, 4, 4), view_pool (P,) indices of usable views;
    objects (B,) the rows of rgb to draw from (default: all C), gathered pixel by pixel, so the
    images of the drawn objects are never copied. The same draws either way.
    Returns origins, dirs (B, R, 3) and target colors (B, R, 3) in [0, 1].
    """
    _, _, h, w, _ = rgb.shape
    device = rgb.device
    if objects is None:
        objects = torch.arange(rgb.shape[0], device=device)
    b = objects.shape[0]
    shape = (b, rays_per_object)
    pick = torch.randint(len(view_pool), shape, device=device, generator=generator)
    views = view_pool.to(device)[pick]
    rows = torch.randint(h, shape, device=device, generator=generator)
    cols = torch.randint(w, shape, device=device, generator=generator)
    rows_of = objects[:, None].expand(shape)
    target = rgb[rows_of, views, rows, cols].float() / 255.0
    poses = cam2world[rows_of, views]
    origins, dirs = rays_through_pixels(poses, intrinsics, cols.float(), rows.float())
    return origins, dirs, target
