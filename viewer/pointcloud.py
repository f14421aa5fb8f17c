"""A colored point cloud from one view: gradient depth along each pixel ray → a binary PLY file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.depth import depth_to_points
from models.renderer import LFNRenderer
from models.resolution import Resolution
from models.stereo_depth import estimate_depth


def view_points(renderer: LFNRenderer, cam2world: torch.Tensor, res: Resolution,
                summed: bool = False, stereo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """World points (N, 3) float32 and colors (N, 3) uint8 of the pixels with a valid depth,
    for the latent the renderer holds; `stereo` refines the depth (models/stereo_depth.py)."""
    depth = estimate_depth(renderer, cam2world, res, summed, stereo)
    colors = renderer.render(cam2world, res).float().clamp(0, 1)
    points = depth_to_points(depth.depth, cam2world, res)  # depth is distance along each ray
    valid = depth.valid.to(points.device)
    rgb = (colors[valid] * 255 + 0.5).to(torch.uint8)
    return points[valid].cpu().numpy().astype(np.float32), rgb.cpu().numpy()


def write_ply(path: Path, points: np.ndarray, colors: np.ndarray) -> None:
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
    )
    vertex = np.dtype([("xyz", "<f4", 3), ("rgb", "u1", 3)])
    rows = np.empty(len(points), dtype=vertex)
    rows["xyz"], rows["rgb"] = points, colors
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(rows.tobytes())
