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

    @property
    def resolution(self) -> int:
        return self.rgb.shape[2]

    def to(self, device: torch.device | str) -> CarViews:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return CarViews(self.ids, move(self.rgb), move(self.cam2world), move(self.intrinsics),
                        move(self.train_view), move(self.depth), move(self.mask))


def read_manifest(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest; make the data set with tools.make_dataset")
    return json.loads(path.read_text())


def load_cars(
    data_dir: str | Path, split: str, with_depth: bool = False, limit: int | None = None
) -> CarViews:
    """Load every car of a split ('train' or 'test') from the data set folder."""
    data_dir = Path(data_dir)
    cars = [c for c in read_manifest(data_dir)["cars"] if c["split"] == split][:limit]
    if not cars:
        raise ValueError(f"{data_dir}: no cars in split {split!r}")
    rgb, poses, depth, mask = [], [], [], []
    for car in cars:
        path = data_dir / f"{car['id']}.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: car {car['id']!r} of {data_dir / 'manifest.json'} "
                                    "has no file")
        try:
            with np.load(path) as z:
                rgb.append(z["rgb"])
                poses.append(z["cam2world"])
                if with_depth:
                    depth.append(z["depth"])
                    mask.append(z["mask"])
                intrinsics, view_split = z["intrinsics"], z["split"]
        except KeyError as e:
            raise ValueError(f"{path}: car file without an array it needs ({e.args[0]})") from e
        except Exception as e:  # a truncated or corrupt zip raises several types in numpy
            raise ValueError(f"{path}: unreadable car file (truncated or corrupt?): "
                             f"{type(e).__name__}: {e}") from e
        if rgb[-1].shape != rgb[0].shape:  # views × H × W × 3, alike for every car of a set
            raise ValueError(f"{path}: images of shape {rgb[-1].shape}, but car "
                             f"{cars[0]['id']!r} of the same data set has {rgb[0].shape}")
        if not np.isfinite(poses[-1]).all():
            raise ValueError(f"{path}: camera poses hold NaN or infinite values")
    stack = lambda arrays: torch.from_numpy(np.stack(arrays)) if arrays else None  # noqa: E731
    return CarViews(
        ids=[c["id"] for c in cars],
        rgb=stack(rgb),
        cam2world=stack(poses).float(),
        intrinsics=torch.from_numpy(intrinsics).float(),
        train_view=torch.from_numpy(np.asarray(view_split) == "train"),
        depth=stack(depth),
        mask=stack(mask),
    )
