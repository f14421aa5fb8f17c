"""Random ray batches from posed images: what training and latent fitting draw each step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.cameras import rays_through_pixels


@dataclass(frozen=True)
class PixelDraw:
    """The pixels of one batch: for each object and ray, a view (an index into the view pool)
    and a row and column, each (B, R) int64."""

    views: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor

    @classmethod
    def empty(cls, shape: tuple[int, int], device: torch.device) -> PixelDraw:
        return cls(*(torch.empty(shape, dtype=torch.int64, device=device) for _ in range(3)))


def draw_pixels(view_count: int, height: int, width: int, shape: tuple[int, int],
                device: torch.device, generator: torch.Generator | None = None,
                out: PixelDraw | None = None) -> PixelDraw:
    """Uniform random pixels of `shape` (objects, rays), written into `out` when given (the
    static inputs of a fit step replayed from a CUDA graph)."""
    out = out or PixelDraw.empty(shape, device)
    for tensor, high in ((out.views, view_count), (out.rows, height), (out.cols, width)):
        torch.randint(high, shape, generator=generator, out=tensor)
    return out


def rays_at_pixels(
    rgb: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor, view_pool: torch.Tensor,
    pixels: PixelDraw, objects: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rays through `pixels` and their target colors, each (B, R, 3) (sample_rays' shapes);
    `view_pool` (P,) or per object (B, P); reads nothing back from the device."""
    if objects is None:
        objects = torch.arange(rgb.shape[0], device=rgb.device)
    view_pool = view_pool.to(rgb.device)
    shared_pool = view_pool.dim() == 1
    views = view_pool[pixels.views] if shared_pool else view_pool.gather(1, pixels.views)
    rows_of = objects[:, None].expand(pixels.views.shape)
    target = rgb[rows_of, views, pixels.rows, pixels.cols].float() / 255.0
    if shared_pool and len(view_pool) == 1:
        # one camera per object (a photo's fit): broadcast it, not a copy per ray, whose backward
        # is a scatter-add
        poses = cam2world[objects[:, None], view_pool[None, :]]
    else:
        poses = cam2world[rows_of, views]
    origins, dirs = rays_through_pixels(poses, intrinsics, pixels.cols.float(), pixels.rows.float())
    return origins, dirs, target


def sample_rays(
    rgb: torch.Tensor, cam2world: torch.Tensor, intrinsics: torch.Tensor,
    view_pool: torch.Tensor, rays_per_object: int, generator: torch.Generator | None = None,
    objects: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw `rays_per_object` random pixels from the views in `view_pool` of each object.

    rgb (C, V, H, W, 3) uint8, cam2world (C, V, 4, 4), view_pool (P,) indices of usable views,
    or (B, P): a pool of its own for each drawn object;
    objects (B,) the rows of rgb to draw from (default: all C), gathered pixel by pixel, so the
    images of the drawn objects are never copied. The same draws either way.
    Returns origins, dirs (B, R, 3) and target colors (B, R, 3) in [0, 1].
    """
    _, _, h, w, _ = rgb.shape
    b = rgb.shape[0] if objects is None else objects.shape[0]
    pixels = draw_pixels(view_pool.shape[-1], h, w, (b, rays_per_object), rgb.device, generator)
    return rays_at_pixels(rgb, cam2world, intrinsics, view_pool, pixels, objects)
