"""Validate gradient depth against the data set's ground truth on held-out views.

    python -m tools.evaluate_depth --ckpt checkpoints/cars.pt --data data/cars [--json PATH]
        [--volumetric checkpoints/cars_volumetric.pt] [--images DIR]

Scores car pixels (ground-truth mask) of the held-out (test) views of training cars: the median
absolute relative error |z − z_gt| / z_gt where the estimate is valid, and the coverage, the
fraction of car pixels with a valid estimate. The volumetric baseline's expected depth is scored
the same way (valid where its opacity exceeds 0.5).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.cardata import load_cars
from engine.cli import OneLineParser, run_entry_point
from models.checkpoint import load_checkpoint
from models.depth import gradient_depth
from models.renderer import BACKENDS, PRECISIONS, make_renderer


def score(depth: torch.Tensor, valid: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor):
    """Relative errors on valid car pixels, and the number of car pixels and valid car pixels."""
    use = valid & mask
    rel = ((depth - truth).abs() / truth)[use]
    return rel, int(mask.sum()), int(use.sum())


def colorize(depth: np.ndarray, valid: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth → uint8 image with matplotlib's turbo map; invalid pixels gray."""
    from matplotlib import colormaps

    scaled = np.clip((depth - near) / (far - near), 0, 1)
    image = (colormaps["turbo"](scaled)[..., :3] * 255).astype(np.uint8)
    image[~valid] = 128
    return image


def evaluate_depth(ckpt_path: Path, data: Path, device: torch.device, volumetric: Path | None,
                   max_cars: int | None, max_views: int | None, window: int,
                   images: Path | None, precision: str = "fp32", backend: str = "eager",
                   summed: bool = False) -> dict:
    """Gradient depth of the LFN (in `precision` through `backend`) and, optionally, the volumetric
    baseline's expected depth (fp32), against the data set's ground truth."""
    cars = load_cars(data, "train", with_depth=True, limit=max_cars)
    views = torch.nonzero(~cars.train_view).flatten()[:max_views].tolist()
    res = cars.resolution
    methods = {"": load_checkpoint(ckpt_path)}
    if volumetric is not None:
        methods["volumetric_"] = load_checkpoint(volumetric)
    result = {"date": time.strftime("%Y-%m-%d"), "resolution": res, "views_scored": 0,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "window": window, "precision": precision, "backend": backend,
              "equations": "summed" if summed else "per-channel"}
    for prefix, ckpt in methods.items():
        lfn = ckpt.model.kind == "lfn"
        renderer = make_renderer(
            ckpt.model, device, precision if lfn else "fp32", backend if lfn else "eager"
        )
        index = {name: i for i, name in enumerate(ckpt.instance_names)}
        errors, car_pixels, valid_pixels, scored = [], 0, 0, 0
        for c, car_id in enumerate(cars.ids):
            if car_id not in index:
                continue
            renderer.set_latent(ckpt.latents[index[car_id]])
            for v in views:
                pose = cars.cam2world[c, v]
                if lfn:
                    estimate = gradient_depth(renderer, pose, res, window=window, summed=summed)
                    depth, valid = estimate.depth.cpu(), estimate.valid.cpu()
                else:
                    _, depth, opacity = renderer.render_with_depth(pose, res)
                    depth, valid = depth.cpu().float(), (opacity > 0.5).cpu()
                truth, mask = cars.depth[c, v], cars.mask[c, v]
                rel, n_car, n_valid = score(depth, valid, truth, mask)
                errors.append(rel)
                car_pixels += n_car
                valid_pixels += n_valid
                scored += 1
                if images is not None and scored <= 4:
                    save_comparison(images, f"{prefix or 'lfn_'}{car_id}_{v}", depth, valid,
                                    truth, mask)
        all_errors = torch.cat(errors) if errors else torch.zeros(0)
        result[f"{prefix}depth_absrel_median"] = float(all_errors.median()) if len(all_errors) else None
        result[f"{prefix}depth_absrel_mean"] = float(all_errors.mean()) if len(all_errors) else None
        result[f"{prefix}depth_coverage"] = valid_pixels / max(car_pixels, 1)
        result["views_scored"] = scored
    return result


def save_comparison(folder: Path, name: str, depth, valid, truth, mask) -> None:
    """Estimate and ground truth side by side, same color scale."""
    folder.mkdir(parents=True, exist_ok=True)
    near, far = float(truth[mask].min()), float(truth[mask].max())
    left = colorize(depth.numpy(), valid.numpy(), near, far)
    right = colorize(truth.nan_to_num(posinf=0).numpy(), mask.numpy(), near, far)
    Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / f"{name}.png")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--volumetric", type=Path)
    p.add_argument("--images", type=Path, help="write depth-vs-ground-truth PNGs here")
    p.add_argument("--max-cars", type=int, default=20)
    p.add_argument("--max-views", type=int, default=5)
    p.add_argument("--window", type=int, default=5, help="pooling window of the least squares")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="the LFN's precision")
    p.add_argument("--backend", choices=BACKENDS, default="eager",
                   help="the LFN's backend (triton: depth from the fused kernel)")
    p.add_argument("--summed", action="store_true",
                   help="the channel-summed depth equations (on triton: one reverse pass)")
    args = p.parse_args(argv)
    return run_entry_point(lambda: report(evaluate_depth(
        args.ckpt, args.data, torch.device(args.device), args.volumetric, args.max_cars,
        args.max_views, args.window, args.images, args.precision, args.backend, args.summed),
        args.json), args.debug)


def report(result: dict, json_path: Path | None) -> None:
    """The depth scores on stdout and in --json."""
    print(json.dumps(result, indent=1))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
