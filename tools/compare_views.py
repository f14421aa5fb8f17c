"""Ground truth beside any number of networks at display size: crops of held-out views of training
cars, rendered at --res (512 by default) whatever size each network learned from, each crop with
its PSNR against the ground truth rendered from the mesh at --res.

    python -m tools.compare_views --data data/cars --torcs torcs --out docs/compare_512.png
        [--ckpt checkpoints/cars.pt ...] [--volumetric checkpoints/cars_volumetric.pt | none]
        [--cars ID ...] [--view 0] [--res 512] [--crop 256] [--json scores.json]

The columns are the ground truth, each --ckpt in order (LFN or volumetric, as the checkpoint says),
then --volumetric unless it is `none`; each is labelled with its file stem (and parent folders where
two stems agree), its kind and the size it was trained at where the checkpoint records it. The
cars must be training cars of every checkpoint (their latents are fitted); the camera is the car's
--view-th held-out view from the data set, so no network saw it. The ground truth is the data set's
own renderer (tools/scene_render.py) at --res with the data set's field of view and anti-aliasing,
from the same car sources (--torcs, --sumo, --flightgear).
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
from tools.make_dataset import read_settings
from tools.scene_render import SceneRenderer

# Two real TORCS models and one procedural car of the default data set.
DEFAULT_CARS = ("torcs-car1-trb1", "torcs-baja-bug", "proc-0-0040")
LABEL_HEIGHT = 22
KIND_NAMES = {"lfn": "LFN", "volumetric": "volumetric"}
RENDER_PRECISION = "fp32"  # the crops are scored: every network renders at full precision


@dataclass(frozen=True)
class NetworkScore:
    label: str  # the column's caption without its score
    path: str
    kind: str  # "lfn" or "volumetric"
    trained_resolution: int | None  # pixels per side of the views it learned from, where recorded
    psnr: float  # whole frame, dB
    crop_psnr: float  # the crop shown


@dataclass(frozen=True)
class CarScores:
    car_id: str
    networks: list[NetworkScore]  # in column order


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="the data set the checkpoints were trained on")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--ckpt", nargs="+", default=["checkpoints/cars.pt"],
                   help="one or more checkpoints of either kind, a column each")
    p.add_argument("--volumetric", default="checkpoints/cars_volumetric.pt",
                   help="the volumetric baseline's column after them, or `none` to leave it out")
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
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the networks render (default: cuda when available, else cpu)")
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


def column_names(paths: list[str]) -> list[str]:
    """Each checkpoint's file stem, led by as many parent folders as it takes to tell it from the
    others'."""
    files = [Path(path).resolve() for path in paths]
    for path, file in zip(paths, files, strict=True):
        if files.count(file) > 1:
            raise UsageError(f"--ckpt/--volumetric: {path} is given twice")
    tails = [(*file.parent.parts, file.stem) for file in files]
    names = []
    for file, tail in zip(files, tails, strict=True):
        depths = range(1, len(tail) + 1)
        depth = next((d for d in depths if [other[-d:] for other in tails].count(tail[-d:]) == 1), None)
        names.append(str(file) if depth is None else "/".join(tail[-depth:]))  # None: a.pt beside a.pth
    return names


@dataclass
class Network:
    """A checkpoint and the one renderer that draws each of its cars in turn."""

    path: str
    label: str  # "cars_wide (LFN, 128x128)": PIL's default font has no ²
    ckpt: Checkpoint
    renderer: Renderer

    @classmethod
    def load(cls, path: str, name: str, ckpt: Checkpoint, device: str, volumetric_sampling: str) -> Network:
        trained_at = ckpt.meta.get("resolution")
        trained = f", {trained_at}x{trained_at}" if trained_at else ""
        label = f"{name} ({KIND_NAMES[ckpt.model.kind]}{trained})"
        renderer = make_renderer(ckpt.model, device, RENDER_PRECISION, "eager", sampling=volumetric_sampling)
        return cls(path, label, ckpt, renderer)

    def require_training_cars(self, cars: list[str]) -> None:
        """Before any rendering: a missing latent should not cost minutes of frames first."""
        for car in cars:
            if car not in self.ckpt.instance_names:
                raise UsageError(f"--cars: {car} is not a training car of {self.path}")

    def image(self, car: str, pose: np.ndarray, res: int) -> np.ndarray:
        """(res, res, 3) float32 in [0, 1]: the latent of `car` (a training car) from `pose`."""
        self.renderer.set_latent(self.ckpt.latents[self.ckpt.instance_names.index(car)])
        with torch.no_grad():
            image = self.renderer.render(torch.from_numpy(pose), res)
        return image.float().clamp(0, 1).cpu().numpy()

    def score(self, image: np.ndarray, truth: np.ndarray, window: tuple[slice, slice]) -> NetworkScore:
        return NetworkScore(self.label, self.path, self.ckpt.model.kind, self.ckpt.meta.get("resolution"),
                            image_psnr(image, truth), image_psnr(image[window], truth[window]))


def load_networks(args: argparse.Namespace) -> list[Network]:
    """The --ckpt checkpoints, then --volumetric unless it is `none`, each with its renderer."""
    paths = args.ckpt + ([] if args.volumetric == "none" else [args.volumetric])
    names = column_names(paths)
    ckpts = [load_checkpoint(path) for path in paths]
    sampling = args.volumetric_sampling
    if any(ckpt.model.kind == "volumetric" for ckpt in ckpts) and (
            reason := volumetric_unavailable(sampling, torch.device(args.device), RENDER_PRECISION)):
        raise UsageError(f"--volumetric-sampling {sampling}: {reason}")
    return [Network.load(path, name, ckpt, args.device, sampling)
            for path, name, ckpt in zip(paths, names, ckpts, strict=True)]


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
    settings = read_settings(settings_path)
    networks = load_networks(args)
    roots = car_roots(args.torcs, args.sumo, args.flightgear)
    instances = find_instances(args.cars, roots, settings.seed, read_manifest(data))
    for network in networks:
        network.require_training_cars(args.cars)
    scene = SceneRenderer(args.res, settings.fov_deg, settings.supersample,
                          coplanar_gap=settings.coplanar_gap)
    rows, scores = [], []
    for car, instance in instances.items():
        pose = held_out_pose(data, car, args.view)
        scene.set_mesh(*build(instance, roots))
        truth_view = scene.render(pose)
        truth = truth_view.rgb.astype(np.float32) / 255
        top, left = crop_box(truth_view.mask, args.crop)
        window = (slice(top, top + args.crop), slice(left, left + args.crop))
        row = [(f"{car}: ground truth {args.res}x{args.res}", truth[window])]
        car_scores = []
        for network in networks:
            image = network.image(car, pose, args.res)
            car_scores.append(network.score(image, truth, window))
            row.append((f"{network.label} {car_scores[-1].crop_psnr:.1f} dB", image[window]))
        rows.append(row)
        scores.append(CarScores(car, car_scores))
        print(f"{car}: " + ", ".join(f"{score.label} {score.psnr:.2f} dB (crop {score.crop_psnr:.2f})"
                                     for score in car_scores), flush=True)
    figure(rows, args.crop).save(args.out)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": date.today().isoformat(), "res": args.res, "crop": args.crop, "view": args.view,
            "device": args.device,
            "volumetric_sampling": args.volumetric_sampling, "cars": [asdict(s) for s in scores]}, indent=1))
    print(f"wrote {args.out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_entry_point(lambda: compare(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
