"""Validate gradient depth and the normals from it against the data set's ground truth.

    python -m tools.evaluate_depth --ckpt checkpoints/cars.pt --data data/cars [--json PATH]
        [--volumetric checkpoints/cars_volumetric.pt [--volumetric-cache F.npz]]
        [--cars-per-source N] [--images DIR] [--figure PNG] [--stereo]

Scores car pixels (ground-truth mask) of the held-out (test) views of training cars, the first
N training cars of each source (TORCS models before their repaints, procedural cars), overall and
per source. Depth: the median absolute relative error |z − z_gt| / z_gt where the estimate is
valid, and the coverage, the fraction of car pixels with a valid estimate. Normals (from depth
through models.depth.normals_from_depth): the angle to the data set's mesh normals (or, for data
sets without them, to normals from the ground-truth depth through the same operator), on the car
pixels where every method scored has a normal, so the methods are compared on the same pixels.
The volumetric baseline's expected depth is scored the same way (valid where its opacity
exceeds 0.5); it costs minutes a view on a CPU, so --volumetric-cache keeps it between runs.
--stereo also scores the gradient depth refined by the wide-baseline search in the light field
(models/stereo_depth.py), keys prefixed `stereo_`, on the same pixels.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.cardata import CarSource, CarViews, car_source, load_cars, read_manifest
from engine.cli import OneLineParser, run_entry_point, write_json
from models.checkpoint import load_checkpoint
from models.depth import gradient_depth, normals_from_depth
from models.renderer import BACKENDS, PRECISIONS, make_renderer
from models.stereo_depth import StereoConfig, refine_depth

THRESHOLDS_DEG = (10, 20, 30)
# the estimates scored, by JSON key prefix: the LFN's gradient depth, the same refined by the
# wide-baseline search (--stereo), the volumetric baseline's expected depth (--volumetric)
CARS_PER_LOAD = 32  # training cars whose views are in memory at once (~1.3 GB)
LABELS = {"": "LFN", "stereo_": "LFN + stereo", "volumetric_": "volumetric"}


def angular_error_deg(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between corresponding normals (..., 3) (normalized here; both must
    face the same side, as camera-facing normals do)."""
    cos = (torch.nn.functional.normalize(estimate.double(), dim=-1)
           * torch.nn.functional.normalize(truth.double(), dim=-1)).sum(-1)
    return torch.rad2deg(torch.acos(cos.clamp(-1.0, 1.0)))


def normal_summary(angles: torch.Tensor, prefix: str = "") -> dict:
    """Median and mean angle and the shares under each of THRESHOLDS_DEG."""
    if not len(angles):
        return {}
    out = {f"{prefix}normal_angle_median_deg": float(angles.median()),
           f"{prefix}normal_angle_mean_deg": float(angles.mean())}
    out.update({f"{prefix}normal_within_{t}deg": float((angles < t).double().mean())
                for t in THRESHOLDS_DEG})
    return out


def select_cars(data: Path, per_source: int) -> dict[str, str]:
    """{car id: source} for the first `per_source` training cars of each source (engine.cardata's
    car_source); real models come before their repaints, so the real cars are distinct shapes."""
    cars = [c for c in read_manifest(data)["cars"] if c["split"] == "train"]
    cars.sort(key=lambda c: c.get("variant_of") is not None)  # stable: manifest order otherwise
    chosen: dict[str, str] = {}
    for source in (CarSource.REAL, CarSource.PROCEDURAL):
        ids = [c["id"] for c in cars if car_source(c) is source][:per_source]
        chosen.update(dict.fromkeys(ids, str(source)))
    return chosen


def training_cars(data: Path, ids: Iterable[str]) -> Iterator[tuple[CarViews, int, str]]:
    """(the views it was loaded with, its index there, its id) for each training car of `ids`,
    with depth and normals, in the data set's order. Loaded CARS_PER_LOAD cars at a time:
    every view of all 710 training cars of every source would take ~28 GB."""
    wanted = set(ids)
    ordered = [c["id"] for c in read_manifest(data)["cars"]
               if c["split"] == "train" and c["id"] in wanted]
    for start in range(0, len(ordered), CARS_PER_LOAD):
        cars = load_cars(data, "train", with_depth=True, ids=ordered[start:start + CARS_PER_LOAD])
        yield from ((cars, c, car_id) for c, car_id in enumerate(cars.ids))


def colorize(depth: np.ndarray, valid: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth → uint8 image with matplotlib's turbo map; invalid pixels gray."""
    from matplotlib import colormaps

    scaled = np.clip((depth - near) / (far - near), 0, 1)
    image = (colormaps["turbo"](scaled)[..., :3] * 255).astype(np.uint8)
    image[~valid] = 128
    return image


class VolumetricCache:
    """The volumetric baseline's depth and opacity per (car, view), in an .npz tied to the
    checkpoint's bytes and the resolution; a stale file is ignored and rewritten. Written after
    every new view, so a run cut off keeps what it computed."""

    def __init__(self, path: Path | None, ckpt_path: Path, res: int) -> None:
        self.path = path
        self.tag = f"{hashlib.sha256(ckpt_path.read_bytes()).hexdigest()}:{res}"
        self.entries: dict[str, np.ndarray] = {}
        if path is not None and path.is_file():
            with np.load(path) as z:
                if str(z["tag"]) == self.tag:
                    self.entries = {k: z[k] for k in z.files if k != "tag"}

    def get(self, key: str, compute) -> tuple[torch.Tensor, torch.Tensor]:
        if key not in self.entries:
            self.entries[key] = np.stack([t.cpu().float().numpy() for t in compute()])
            self.save()
        depth, opacity = torch.from_numpy(self.entries[key])
        return depth, opacity

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_suffix(".partial.npz")
            np.savez_compressed(partial, tag=np.array(self.tag), **self.entries)
            partial.replace(self.path)


@dataclass
class Tally:
    """One method's scores on one source: depth errors and normal angles per view, car pixels
    and those with a valid estimate (for "shared": car pixels with a true normal, and those
    every method has a normal for)."""

    errors: list[torch.Tensor] = field(default_factory=list)
    angles: list[torch.Tensor] = field(default_factory=list)
    pixels: int = 0
    kept: int = 0

    @staticmethod
    def merge(tallies: list[Tally]) -> Tally:
        return Tally([e for t in tallies for e in t.errors], [a for t in tallies for a in t.angles],
                     sum(t.pixels for t in tallies), sum(t.kept for t in tallies))


@dataclass(frozen=True)
class DepthEvaluationConfig:
    """What one evaluation scores and where it writes its pictures; defaults as on the command line."""

    checkpoint: Path  # the LFN scored
    data: Path  # the data set the checkpoint was trained on, with ground-truth depth
    device: torch.device  # where the LFN (and the volumetric baseline) run
    volumetric: Path | None = None  # the volumetric baseline's checkpoint, scored beside the LFN
    volumetric_cache: Path | None = None  # .npz of the baseline's depth, reused between runs
    cars_per_source: int = 6  # training cars scored from each source (TORCS, procedural)
    max_views: int = 5  # held-out views scored per car
    window: int = 5  # pooling window of the gradient depth's least squares
    images: Path | None = None  # folder for depth-vs-ground-truth PNGs of the first views
    figure: Path | None = None  # PNG of RGB, normals and angular error for 3 views
    precision: str = "fp32"  # the LFN's precision (models.renderer.PRECISIONS)
    backend: str = "eager"  # the LFN's backend (models.renderer.BACKENDS)
    summed: bool = False  # the channel-summed depth equations
    stereo: bool = False  # also score the depth refined by the wide-baseline search


def evaluate_depth(config: DepthEvaluationConfig) -> dict:
    """Gradient depth of the LFN (in `config.precision` through `config.backend`) and its normals
    and, optionally, the same refined by the wide-baseline search (models/stereo_depth.py) and the
    volumetric baseline's expected depth (fp32), with their normals, against the data set's
    ground truth."""
    ckpt = load_checkpoint(config.checkpoint)
    sources = select_cars(config.data, config.cars_per_source)
    training = training_cars(config.data, sources)
    first = next(training)
    views = torch.nonzero(~first[0].train_view).flatten()[:config.max_views].tolist()
    res, mesh_normals = first[0].resolution, first[0].normal is not None
    renderer = make_renderer(ckpt.model, config.device, config.precision, config.backend)
    index = {name: i for i, name in enumerate(ckpt.instance_names)}
    vol = cache = None
    if config.volumetric is not None:
        vol_ckpt = load_checkpoint(config.volumetric)
        vol = (make_renderer(vol_ckpt.model, config.device, "fp32", "eager"),
               {name: i for i, name in enumerate(vol_ckpt.instance_names)}, vol_ckpt.latents)
        cache = VolumetricCache(config.volumetric_cache, config.volumetric, res)
    prefixes = ("", *("stereo_",) * config.stereo, *("volumetric_",) * (vol is not None))
    stats = {str(s): {p: Tally() for p in (*prefixes, "shared")}
             for s in (CarSource.REAL, CarSource.PROCEDURAL)}
    real_ids = [i for i, s in sources.items() if s == CarSource.REAL]
    figure_ids = {*real_ids[:2], *[i for i, s in sources.items() if s == CarSource.PROCEDURAL][:1]}
    rows, scored = [], 0
    for cars, c, car_id in itertools.chain([first], training):
        if car_id not in index or (vol and car_id not in vol[1]):
            continue
        renderer.set_latent(ckpt.latents[index[car_id]])
        if vol:
            vol[0].set_latent(vol[2][vol[1][car_id]])
        for v in views:
            pose, truth, mask = cars.cam2world[c, v], cars.depth[c, v], cars.mask[c, v]
            estimate = gradient_depth(renderer, pose, res, window=config.window, summed=config.summed)
            depths = {"": (estimate.depth.cpu(), estimate.valid.cpu())}
            if config.stereo:
                refined = refine_depth(renderer, pose, res, estimate)
                depths["stereo_"] = (refined.depth.cpu(), refined.valid.cpu())
            if vol:
                key = f"{car_id}:{v}"
                depth, opacity = cache.get(key, lambda p=pose: vol[0].render_with_depth(p, res)[1:])
                depths["volumetric_"] = (depth, opacity > 0.5)
            if cars.normal is not None:
                true_normals = cars.normal[c, v]
                has_truth = mask & (true_normals.norm(dim=-1) > 0.5)
            else:
                true_normals, has_truth = normals_from_depth(truth.nan_to_num(posinf=0), mask,
                                                             pose, res)
                has_truth &= mask
            normals = {p: normals_from_depth(d, ok, pose, res) for p, (d, ok) in depths.items()}
            use = has_truth.clone()
            for _, defined in normals.values():
                use &= defined
            group = stats[sources[car_id]]
            for p, (depth, valid) in depths.items():
                on_car = valid & mask
                group[p].errors.append(((depth - truth).abs() / truth)[on_car])
                group[p].angles.append(angular_error_deg(normals[p][0][use], true_normals[use]))
                group[p].pixels += int(mask.sum())
                group[p].kept += int(on_car.sum())
            # normals: of the car pixels with a true normal, those every method has one for
            group["shared"].pixels += int(has_truth.sum())
            group["shared"].kept += int(use.sum())
            scored += 1
            if config.figure is not None and v == views[0] and car_id in figure_ids:
                rows.append(figure_row(cars.rgb[c, v], true_normals, has_truth, normals, use))
            if config.images is not None and scored <= 4:
                save_comparison(config.images, f"lfn_{car_id}_{v}", *depths[""], truth, mask)
    if config.figure is not None and rows:
        lfn = [p for p in prefixes if p != "volumetric_"]
        save_figure(config.figure, rows, ["RGB", "mesh normals", *(f"{LABELS[p]} normals" for p in prefixes),
                                          *(f"{LABELS[p]} error, 0-45 deg" for p in lfn)])

    def summary(groups: list[str]) -> dict:
        out = {}
        for p in (*prefixes, "shared"):
            tally = Tally.merge([stats[g][p] for g in groups])
            if p == "shared":
                out["normal_coverage"] = tally.kept / max(tally.pixels, 1)
                continue
            errors = torch.cat(tally.errors or [torch.zeros(0)])
            out[f"{p}depth_absrel_median"] = float(errors.median()) if len(errors) else None
            out[f"{p}depth_absrel_mean"] = float(errors.mean()) if len(errors) else None
            out[f"{p}depth_coverage"] = tally.kept / max(tally.pixels, 1)
            out.update(normal_summary(torch.cat(tally.angles or [torch.zeros(0)]), p))
        return out

    return {
        "date": time.strftime("%Y-%m-%d"), "resolution": res, "views_scored": scored,
        "cars": {s: [i for i, src in sources.items() if src == s] for s in stats},
        "views": views,
        "device": torch.cuda.get_device_name(config.device) if config.device.type == "cuda" else "cpu",
        "window": config.window, "precision": config.precision, "backend": config.backend,
        "equations": "summed" if config.summed else "per-channel",
        "stereo": asdict(StereoConfig()) if config.stereo else None,
        "normal_truth": "mesh" if mesh_normals else "ground-truth depth",
        **summary(list(stats)),
        "per_source": {s: summary([s]) for s in stats},
    }


def normal_image(normals: torch.Tensor, defined: torch.Tensor) -> np.ndarray:
    """World normals → RGB (n + 1) / 2; undefined pixels white."""
    image = ((normals + 1) * 127.5).clamp(0, 255).byte().numpy()
    image[~defined.numpy()] = 255
    return image


def figure_row(rgb, true_normals, has_truth, normals: dict, use) -> np.ndarray:
    """RGB | true normals | each estimate's normals | each LFN estimate's angular error (0–45°,
    turbo; gray on car pixels not scored)."""
    from matplotlib import colormaps

    panels = [rgb.numpy(), normal_image(true_normals, has_truth)]
    panels += [normal_image(*normals[p]) for p in normals]
    for p in (p for p in normals if p != "volumetric_"):
        angles = torch.zeros(use.shape, dtype=torch.float64)
        angles[use] = angular_error_deg(normals[p][0][use], true_normals[use])
        error = (colormaps["turbo"]((angles / 45).clamp(0, 1).numpy())[..., :3] * 255).astype(np.uint8)
        error[~use.numpy()] = 128
        error[~has_truth.numpy()] = 255
        panels.append(error)
    return np.concatenate(panels, axis=1)


def save_figure(path: Path, rows: list[np.ndarray], labels: list[str]) -> None:
    """The rows stacked under a header naming each panel."""
    from PIL import ImageDraw

    width = rows[0].shape[1] // len(labels)
    header = Image.new("RGB", (rows[0].shape[1], 16), "white")
    draw = ImageDraw.Draw(header)
    for k, label in enumerate(labels):
        draw.text((k * width + 4, 2), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.asarray(header), *rows], axis=0)).save(path)


def save_comparison(folder: Path, name: str, depth, valid, truth, mask) -> None:
    """Estimate and ground truth side by side, same color scale."""
    folder.mkdir(parents=True, exist_ok=True)
    near, far = float(truth[mask].min()), float(truth[mask].max())
    left = colorize(depth.numpy(), valid.numpy(), near, far)
    right = colorize(truth.nan_to_num(posinf=0).numpy(), mask.numpy(), near, far)
    Image.fromarray(np.concatenate([left, right], axis=1)).save(folder / f"{name}.png")


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True, help="the LFN checkpoint scored")
    p.add_argument("--data", type=Path, required=True,
                   help="the data set the checkpoint was trained on, with ground-truth depth")
    p.add_argument("--json", type=Path, help="also write the scores here")
    p.add_argument("--volumetric", type=Path,
                   help="a volumetric baseline checkpoint, its expected depth scored beside the LFN "
                        "(default: none)")
    p.add_argument("--volumetric-cache", type=Path,
                   help="keep the volumetric depth here (.npz), reused while checkpoint and res match")
    p.add_argument("--images", type=Path, help="write depth-vs-ground-truth PNGs here")
    p.add_argument("--figure", type=Path, help="write RGB | normals (true, LFN, volumetric) | "
                                               "LFN angular error for 3 views to this PNG")
    p.add_argument("--cars-per-source", type=int, default=DepthEvaluationConfig.cars_per_source,
                   help="training cars scored from each source (TORCS, procedural)")
    p.add_argument("--max-views", type=int, default=DepthEvaluationConfig.max_views,
                   help="held-out views scored per car, the first ones (default %(default)s)")
    p.add_argument("--window", type=int, default=DepthEvaluationConfig.window,
                   help="pooling window of the least squares")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the LFN and the volumetric baseline run (default: cuda when available)")
    p.add_argument("--precision", choices=sorted(PRECISIONS), default=DepthEvaluationConfig.precision,
                   help="the LFN's precision")
    p.add_argument("--backend", choices=BACKENDS, default=DepthEvaluationConfig.backend,
                   help="the LFN's backend (triton: depth from the fused kernel)")
    p.add_argument("--summed", action="store_true",
                   help="the channel-summed depth equations (on triton: one reverse pass)")
    p.add_argument("--stereo", action="store_true",
                   help="also score the depth refined by the wide-baseline search (stereo_ keys)")
    args = p.parse_args(argv)
    # built inside the entry point, so a bad --device is one error line like any other failure
    return run_entry_point(lambda: report(evaluate_depth(config_from(args)), args.json), args.debug)


def config_from(args: argparse.Namespace) -> DepthEvaluationConfig:
    """The parsed command line as the evaluation's settings."""
    return DepthEvaluationConfig(
        checkpoint=args.ckpt, data=args.data, device=torch.device(args.device),
        volumetric=args.volumetric, volumetric_cache=args.volumetric_cache,
        cars_per_source=args.cars_per_source, max_views=args.max_views, window=args.window,
        images=args.images, figure=args.figure, precision=args.precision, backend=args.backend,
        summed=args.summed, stereo=args.stereo)


def report(result: dict, json_path: Path | None) -> None:
    """The depth scores on stdout and in --json."""
    print(json.dumps(result, indent=1))
    if json_path:
        write_json(json_path, result)


if __name__ == "__main__":
    sys.exit(main())
