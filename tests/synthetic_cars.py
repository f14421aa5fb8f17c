"""A tiny analytic data set in the tools.make_dataset format, for tests that need no GL.

Each "car" is a sphere with a two-colour pattern, ray-cast exactly in torch, so its depth and
mask are ground truth by construction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models.cameras import intrinsics, orbit_pose, pixel_rays


def sphere_view(center: torch.Tensor, radius: float, colors: torch.Tensor, pose: torch.Tensor,
                res: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (res, res, 3) and depth along the ray (res, res), inf where the ray misses."""
    origins, dirs = pixel_rays(pose, intrinsics(res, res), res, res)
    oc = origins - center
    b = (oc * dirs).sum(-1)
    disc = b**2 - ((oc * oc).sum(-1) - radius**2)
    hit = disc > 0
    t = torch.where(hit, -b - torch.sqrt(disc.clamp(min=0)), torch.full_like(b, float("inf")))
    points = origins + t.nan_to_num(posinf=0.0)[..., None] * dirs
    stripe = (torch.sin(6 * points[..., 2]) > 0)[..., None]
    rgb = torch.where(stripe, colors[0], colors[1])
    rgb = torch.where(hit[..., None], rgb, torch.ones(3))
    return (rgb.numpy() * 255).round().astype(np.uint8), t.numpy().astype(np.float32)


def write_synthetic_dataset(out: Path, cars: int = 4, views: int = 6, test_views: int = 2,
                            res: int = 16, test_cars: int = 1, seed: int = 0) -> Path:
    gen = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"res": res, "views": views, "test_views": test_views, "fov_deg": 40.0,
                "radius": 3.0, "cars": []}
    azimuths = torch.linspace(0, 360, views + test_views + 1)[:-1]
    poses = torch.stack([orbit_pose(float(a), 20.0 + 10 * (i % 2)) for i, a in enumerate(azimuths)])
    split = np.array(["train"] * views + ["test"] * test_views)
    split = split[np.argsort(np.arange(views + test_views) % 4 == 3, kind="stable")]
    for c in range(cars):
        colors = torch.rand(2, 3, generator=gen)
        radius = 0.5 + 0.4 * float(torch.rand(1, generator=gen))
        views_rgb, views_depth = zip(*[sphere_view(torch.zeros(3), radius, colors, p, res)
                                       for p in poses], strict=True)
        depth = np.stack(views_depth)
        car_id = f"sphere{c:03d}"
        np.savez_compressed(
            out / f"{car_id}.npz", rgb=np.stack(views_rgb), depth=depth, mask=np.isfinite(depth),
            cam2world=poses.numpy().astype(np.float32),
            intrinsics=intrinsics(res, res).numpy(), split=split,
        )
        manifest["cars"].append({
            "id": car_id, "source": f"procedural:{c}", "variant_of": None, "license": "test",
            "split": "test" if c >= cars - test_cars else "train",
        })
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out
