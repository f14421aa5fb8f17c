"""Reading the car data set written by tools.make_dataset (manifest.json + one .npz per car)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class CarViews:
    """All views of a set of cars, stacked: C cars × V views of H × W pixels."""

    ids: list[str]
    rgb: torch.Tensor  # (C, V, H, W, 3) uint8
    cam2world: torch.Tensor  # (C, V, 4, 4) float32, OpenCV axes
    intrinsics: torch.Tensor  # (3, 3) float32, pixels
    train_view: torch.Tensor  # (V,) bool: training view (else held-out test view)
    depth: torch.Tensor | None = None  # (C, V, H, W) float32, inf on background
    mask: torch.Tensor | None = None  # (C, V, H, W) bool
    # (C, V, H, W, 3) float32 world-frame unit normals, zeros on background; None for data sets
    # rendered before normals were (or when any car lacks them)
    normal: torch.Tensor | None = None

    @property
    def resolution(self) -> int:
        return self.rgb.shape[2]

    def to(self, device: torch.device | str) -> CarViews:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return CarViews(self.ids, move(self.rgb), move(self.cam2world), move(self.intrinsics),
                        move(self.train_view), move(self.depth), move(self.mask),
                        move(self.normal))


def read_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; make the data set with tools.make_dataset")
    return json.loads(path.read_text())


def load_cars(
    data_dir: str | Path, split: str, with_depth: bool = False, limit: int | None = None,
    ids: list[str] | None = None,
) -> CarViews:
    """Load every car of a split ('train' or 'test') from the data set folder, or only `ids`."""
    data_dir = Path(data_dir)
    cars = [c for c in read_manifest(data_dir)["cars"] if c["split"] == split
            and (ids is None or c["id"] in ids)][:limit]
    if not cars:
        raise ValueError(f"{data_dir}: no cars in split {split!r}")
    rgb, poses, depth, mask, normal = [], [], [], [], []
    for car in cars:
        with np.load(data_dir / f"{car['id']}.npz") as z:
            rgb.append(z["rgb"])
            poses.append(z["cam2world"])
            if with_depth:
                depth.append(z["depth"])
                mask.append(z["mask"])
                if "normal" in z.files:
                    normal.append(z["normal"])
            intrinsics, view_split = z["intrinsics"], z["split"]
    stack = lambda arrays: torch.from_numpy(np.stack(arrays)) if arrays else None  # noqa: E731
    return CarViews(
        ids=[c["id"] for c in cars],
        rgb=stack(rgb),
        cam2world=stack(poses).float(),
        intrinsics=torch.from_numpy(intrinsics).float(),
        train_view=torch.from_numpy(np.asarray(view_split) == "train"),
        depth=stack(depth),
        mask=stack(mask),
        normal=stack(normal) if len(normal) == len(cars) else None,
    )
