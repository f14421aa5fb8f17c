"""Ground truth beside the LFN and the volumetric baseline at display size: crops of held-out views
of training cars, rendered at --res (512 by default) although both networks learned from the data
set's 128² images, each crop with its PSNR against the ground truth rendered from the mesh at --res.

    python -m tools.compare_views --data data/cars --torcs torcs --out docs/compare_512.png
        [--ckpt checkpoints/cars.pt] [--volumetric checkpoints/cars_volumetric.pt]
        [--cars ID ...] [--view 0] [--res 512] [--crop 256] [--json scores.json]

The cars must be training cars of both checkpoints (their latents are fitted); the camera is the
car's --view-th held-out view from the data set, so no network saw it. The ground truth is the
data set's own renderer (tools/scene_render.py) at --res with the data set's field of view and
anti-aliasing, from the same car sources (--torcs, --sumo, --flightgear).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from engine.cardata import read_manifest, require_keys
from engine.cli import OneLineParser, UsageError, run_entry_point
from engine.metrics import psnr
from models.checkpoint import Checkpoint, load_checkpoint
from models.renderer import Renderer, make_renderer, volumetric_unavailable
from tools.car_set import (
    CarRoots,
    Instance,
    build,
    car_roots,
    flightgear_instances,
    procedural_instances,
    sumo_instances,
    torcs_instances,
)
from tools.scene_render import SceneRenderer

# Two real TORCS models and one procedural car of the default data set.
DEFAULT_CARS = ("torcs-car1-trb1", "torcs-baja-bug", "proc-0-0040")
LABEL_HEIGHT = 22


@dataclass(frozen=True)
class CarScores:
    car_id: str
    lfn_psnr: float  # whole frame, dB
    volumetric_psnr: float
    lfn_crop_psnr: float  # the crop shown
    volumetric_crop_psnr: float


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the data set the checkpoints were trained on")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--ckpt", default="checkpoints/cars.pt")
    p.add_argument("--volumetric", default="checkpoints/cars_volumetric.pt")
    p.add_argument("--cars", nargs="+", default=list(DEFAULT_CARS), help="training car ids")
    p.add_argument("--view", type=int, default=0, help="which held-out view of each car")
    p.add_argument("--res", type=int, default=512, help="display size rendered (square)")
    p.add_argument("--crop", type=int, default=256, help="side of the square crop shown, pixels")
    p.add_argument("--torcs", help="TORCS data, as given to tools.make_dataset")
    p.add_argument("--sumo", help="SUMO's car models, as given to tools.make_dataset")
    p.add_argument("--flightgear", help="FlightGear's road vehicles, as given to tools.make_dataset")
    p.add_argument("--volumetric-sampling", default="accelerated",
                   help="the baseline's sampler: accelerated (occupancy marching, ≥ 100 dB against "
                        "dense, BENCHMARKS.md) or dense (196 samples a ray; minutes a frame on a CPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", help="also write the scores here")
    args = p.parse_args(argv)
    if not 0 < args.crop <= args.res:
        p.error(f"--crop {args.crop} must be within 1..--res ({args.res})")
    return args


def find_instances(ids: list[str], roots: CarRoots, seed: int, manifest: dict) -> dict[str, Instance]:
    """The data set's instances of these ids (real cars as tools.make_dataset's default --paints
    makes them; the procedural cars' count and style as the manifest lists them)."""
    procedural = [car["id"] for car in manifest["cars"] if car["source"].startswith("procedural:")]
    style = "v2" if any(car.startswith("proc2-") for car in procedural) else "v1"
    candidates = procedural_instances(len(procedural), 0, seed, style)
    if roots.torcs is not None:
        candidates += torcs_instances(roots.torcs, 8, seed)
    if roots.sumo is not None:
        candidates += sumo_instances(roots.sumo, 8, seed)
    if roots.flightgear is not None:
        candidates += flightgear_instances(roots.flightgear, 8, seed)
    by_id = {instance.id: instance for instance in candidates}
    missing = [car for car in ids if car not in by_id]
    if missing:
        raise UsageError(f"--cars: {', '.join(missing)} not among the cars these sources make "
                         f"(real cars need --torcs, --sumo or --flightgear)")
    return {car: by_id[car] for car in ids}


def held_out_pose(data: Path, car: str, view: int) -> np.ndarray:
    path = data / f"{car}.npz"
    if not path.is_file():
        raise UsageError(f"--cars: {car} has no {path}")
    with np.load(path) as arrays:
        require_keys(path, arrays.files, ("cam2world", "split"))
        poses = arrays["cam2world"][arrays["split"] == "test"]
    if not 0 <= view < len(poses):
        raise UsageError(f"--view {view}: {car} has {len(poses)} held-out views")
    return poses[view]


@dataclass
class Network:
    """A checkpoint and the one renderer that draws each of its cars in turn."""

    ckpt: Checkpoint
    renderer: Renderer

    @classmethod
    def load(cls, path: str, device: str, sampling: str) -> Network:
        ckpt = load_checkpoint(path)
        return cls(ckpt, make_renderer(ckpt.model, device, "fp32", "eager", sampling=sampling))

    def image(self, car: str, pose: np.ndarray, res: int) -> np.ndarray:
        """(res, res, 3) float32 in [0, 1]: the latent of `car` from `pose`."""
        if car not in self.ckpt.instance_names:
            raise UsageError(f"--cars: {car} is not a training car of this checkpoint")
        self.renderer.set_latent(self.ckpt.latents[self.ckpt.instance_names.index(car)])
        with torch.no_grad():
            image = self.renderer.render(torch.from_numpy(pose), res)
        return image.float().clamp(0, 1).cpu().numpy()


def crop_box(mask: np.ndarray, side: int) -> tuple[int, int]:
    """(top, left) of a side × side window centred on the car's silhouette, inside the frame."""
    rows, cols = np.nonzero(mask)
    height, width = mask.shape
    center_row = (rows.min() + rows.max()) // 2 if rows.size else height // 2
    center_col = (cols.min() + cols.max()) // 2 if cols.size else width // 2
    top = int(np.clip(center_row - side // 2, 0, height - side))
    left = int(np.clip(center_col - side // 2, 0, width - side))
    return top, left


def image_psnr(image: np.ndarray, truth: np.ndarray) -> float:
    return float(psnr(torch.from_numpy(image), torch.from_numpy(truth)))


def figure(rows: list[list[tuple[str, np.ndarray]]], side: int) -> Image.Image:
    """Rows of labelled crops (float RGB in [0, 1]), a caption strip above each crop."""
    columns = len(rows[0])
    sheet = Image.new("RGB", (columns * side, len(rows) * (side + LABEL_HEIGHT)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(rows):
        top = r * (side + LABEL_HEIGHT)
        for c, (label, image) in enumerate(row):
            draw.text((c * side + 4, top + 4), label, fill="black")
            tile = Image.fromarray((image * 255 + 0.5).clip(0, 255).astype(np.uint8))
            sheet.paste(tile, (c * side, top + LABEL_HEIGHT))
    return sheet


def compare(args: argparse.Namespace) -> None:
    data = Path(args.data)
    settings_path = data / "settings.json"
    if not settings_path.is_file():
        raise UsageError(f"--data: {settings_path} is missing; make the data set with tools.make_dataset")
    settings = json.loads(settings_path.read_text())
    if (reason := volumetric_unavailable(args.volumetric_sampling, torch.device(args.device))) is not None:
        raise UsageError(f"--volumetric-sampling {args.volumetric_sampling}: {reason}")
    lfn = Network.load(args.ckpt, args.device, "dense")
    volumetric = Network.load(args.volumetric, args.device, args.volumetric_sampling)
    roots = car_roots(args.torcs, args.sumo, args.flightgear)
    instances = find_instances(args.cars, roots, settings["seed"], read_manifest(data))
    scene = SceneRenderer(args.res, settings["fov_deg"], settings["supersample"])
    rows, scores = [], []
    for car, instance in instances.items():
        pose = held_out_pose(data, car, args.view)
        scene.set_mesh(*build(instance, roots))
        truth_view = scene.render(pose)
        truth = truth_view.rgb.astype(np.float32) / 255
        lfn_image = lfn.image(car, pose, args.res)
        volumetric_image = volumetric.image(car, pose, args.res)
        top, left = crop_box(truth_view.mask, args.crop)
        window = (slice(top, top + args.crop), slice(left, left + args.crop))
        score = CarScores(car, image_psnr(lfn_image, truth), image_psnr(volumetric_image, truth),
                          image_psnr(lfn_image[window], truth[window]),
                          image_psnr(volumetric_image[window], truth[window]))
        scores.append(score)
        rows.append([(f"{car}: ground truth {args.res}x{args.res}", truth[window]),
                     (f"LFN {score.lfn_crop_psnr:.1f} dB", lfn_image[window]),
                     (f"volumetric {score.volumetric_crop_psnr:.1f} dB", volumetric_image[window])])
        print(f"{car}: LFN {score.lfn_psnr:.2f} dB, volumetric {score.volumetric_psnr:.2f} dB "
              f"(crop {score.lfn_crop_psnr:.2f} / {score.volumetric_crop_psnr:.2f})", flush=True)
    figure(rows, args.crop).save(args.out)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": date.today().isoformat(), "res": args.res, "crop": args.crop, "view": args.view,
            "device": args.device,
            "volumetric_sampling": args.volumetric_sampling, "ckpt": args.ckpt,
            "volumetric": args.volumetric, "cars": [asdict(s) for s in scores]}, indent=1))
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_entry_point(lambda: compare(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
