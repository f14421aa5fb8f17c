"""Render the car data set: DIR/manifest.json and one DIR/<id>.npz per car.

    python -m tools.make_dataset --out data/cars --torcs /path/to/torcs-data --workers 16
    python -m tools.make_dataset --out data/cars2 --torcs DIR --sumo DIR --flightgear DIR \
        --procedural-style v2
    python -m tools.make_dataset --out data/cars_all --torcs DIR --sumo DIR --flightgear DIR \
        --procedural-style v1 v2
    python -m tools.make_dataset --out /tmp/tiny --source procedural --cars 4 --res 32
    python -m tools.make_dataset --pack-torcs /path/to/torcs-data data/torcs-pack
    python -m tools.make_dataset --pack-flightgear /path/to/flightgear-data data/fg-pack

Each .npz: rgb uint8 (V, H, W, 3), depth float32 (V, H, W) (distance along each pixel's ray,
inf on background), mask bool (V, H, W), normal float32 (V, H, W, 3) (world-frame unit normal of
the visible triangle, facing the camera, zeros on background), cam2world float32 (V, 4, 4) OpenCV,
intrinsics float32 (3, 3), split (V,) 'train' / 'test'; V = views + test views, training views first.
A rerun with the same settings keeps the cars already written (commands may be cut off).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.cli import OneLineParser, UsageError, run_entry_point
from models.cameras import DEFAULT_FOV_DEG, DEFAULT_RADIUS
from tools.car_set import (
    PROCEDURAL_STYLES,
    CarRoots,
    Instance,
    build,
    car_roots,
    find_root,
    flightgear_instances,
    interleave,
    procedural_instances,
    reshaped_instances,
    sumo_instances,
    torcs_instances,
)
from tools.flightgear_cars import find_flightgear_models, pack_flightgear
from tools.mesh import COPLANAR_GAP
from tools.scene_render import SceneRenderer
from tools.torcs_cars import find_torcs_root
from tools.views import poses, test_directions, train_directions


@dataclass(frozen=True)
class Settings:
    res: int
    views: int
    test_views: int
    fov_deg: float
    radius: float
    seed: int
    supersample: int
    coplanar_gap: float  # tools/scene_render.py; 0: faces as the model draws them


def read_settings(path: Path) -> Settings:
    """The settings a data set was made with (its settings.json); a set made before the coplanar
    gap existed was rendered without it."""
    return Settings(**{"coplanar_gap": 0.0, **json.loads(path.read_text())})


def render_car(instance: Instance, settings: Settings, roots: CarRoots,
               renderer: SceneRenderer) -> dict[str, np.ndarray]:
    """All views of one car as the arrays its .npz holds."""
    rng = np.random.default_rng([settings.seed, zlib.crc32(instance.id.encode())])
    train = poses(*train_directions(settings.views, rng), settings.radius)
    test = poses(*test_directions(settings.test_views, rng), settings.radius)
    cam2world = np.concatenate([train, test]).astype(np.float32)
    mesh, images = build(instance, roots)
    renderer.set_mesh(mesh, images)
    views = [renderer.render(pose) for pose in cam2world]
    return {
        "rgb": np.stack([v.rgb for v in views]),
        "depth": np.stack([v.depth for v in views]),
        "mask": np.stack([v.mask for v in views]),
        "normal": np.stack([v.normal for v in views]),
        "cam2world": cam2world,
        "intrinsics": renderer.intrinsics.astype(np.float32),
        "split": np.array(["train"] * settings.views + ["test"] * settings.test_views),
    }


_worker: dict = {}
POOL_RESTARTS = 3  # fresh worker pools after a worker dies, before the run gives up


def _init_worker(settings: Settings, roots: CarRoots, threads: int) -> None:
    # llvmpipe (CPU GL) starts a thread per core in every process: share the cores instead
    os.environ.setdefault("LP_NUM_THREADS", str(threads))
    torch.set_num_threads(1)
    _worker.update(settings=settings, roots=roots,
                   renderer=SceneRenderer(settings.res, settings.fov_deg, settings.supersample,
                                          coplanar_gap=settings.coplanar_gap))


def _write_car(instance: Instance, out: Path) -> str:
    arrays = render_car(instance, _worker["settings"], _worker["roots"], _worker["renderer"])
    partial = out / f"{instance.id}.partial.npz"
    np.savez_compressed(partial, **arrays)
    partial.replace(out / f"{instance.id}.npz")  # whole files only, even when cut off
    return instance.id


def render_in_workers(todo: list[Instance], out: Path, workers: int, init: tuple,
                      initializer: Callable = _init_worker, write: Callable = _write_car) -> None:
    """`write(instance, out)` for each of `todo` in `workers` spawned processes set up by
    `initializer(*init)` (spawn: GL contexts and torch threads do not survive fork). A worker that
    dies (one segfaulted under llvmpipe in ~1 200 cars on a 2-core CPU) breaks its pool; where
    multiprocessing.Pool waited forever for the car it lost, the cars not yet written go to a
    fresh pool, up to POOL_RESTARTS times, and the cars written are kept either way."""
    context = multiprocessing.get_context("spawn")
    left = {instance.id: instance for instance in todo}
    with tqdm(total=len(todo), unit="car") as bar:
        for restart in range(POOL_RESTARTS + 1):
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=initializer,
                                       initargs=init)
            try:
                for done in as_completed([pool.submit(write, i, out) for i in left.values()]):
                    del left[done.result()]
                    bar.update()
                return
            except BrokenProcessPool:
                written = [car_id for car_id in left if (out / f"{car_id}.npz").is_file()]
                for car_id in written:  # finished as the pool broke, before their results came
                    del left[car_id]
                bar.update(len(written))
                if restart == POOL_RESTARTS:
                    raise RuntimeError(
                        f"rendering workers died {restart + 1} times (a crash in the GL driver?); "
                        f"the {len(todo) - len(left)} cars written are kept: the same command "
                        f"renders the other {len(left)}") from None
                tqdm.write(f"a rendering worker died: {len(left)} cars go to a fresh pool")
            finally:  # a car that fails stops the run without waiting for the queued ones
                pool.shutdown(cancel_futures=True)


def plan(args: argparse.Namespace, roots: CarRoots) -> list[Instance]:
    instances = []
    if args.source in ("all", "torcs") and roots.torcs is not None:
        instances += torcs_instances(roots.torcs, args.paints, args.seed)
    if args.source in ("all", "torcs") and roots.sumo is not None:
        instances += sumo_instances(roots.sumo, args.paints, args.seed)
    if args.source in ("all", "torcs") and roots.flightgear is not None:
        instances += flightgear_instances(roots.flightgear, args.paints, args.seed)
    instances += reshaped_instances(instances, args.reshapes, args.seed)
    if args.source in ("all", "procedural"):
        for style in dict.fromkeys(args.procedural_style):  # each style once, in the order given
            instances += procedural_instances(args.procedural, args.test_procedural, args.seed,
                                              style)
    ordered = interleave(instances)[: args.cars]
    return sorted(ordered, key=instances.index)  # a limit picks a mix; output keeps plan order


def make_dataset(args: argparse.Namespace) -> None:
    roots = car_roots(args.torcs, args.sumo, args.flightgear)
    if roots.torcs is None and args.source == "torcs":
        raise UsageError("--source torcs needs --torcs DIR")
    if roots == CarRoots() and args.source == "all":
        print("no --torcs given: procedural cars only")
    settings = Settings(args.res, args.views, args.test_views, DEFAULT_FOV_DEG, DEFAULT_RADIUS,
                        args.seed, args.supersample,
                        COPLANAR_GAP if args.separate_coplanar_faces else 0.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings_file = out / "settings.json"
    if settings_file.is_file() and read_settings(settings_file) != settings:
        if not args.overwrite:
            raise UsageError(f"--out {out} holds a data set with other settings (--overwrite)")
        for old in out.glob("*.npz"):
            old.unlink()
    settings_file.write_text(json.dumps(asdict(settings)))
    instances = plan(args, roots)
    todo = [i for i in instances if args.overwrite or not (out / f"{i.id}.npz").is_file()]
    print(f"{len(instances)} cars ({sum(i.split == 'test' for i in instances)} held out), "
          f"{len(todo)} to render, {args.views}+{args.test_views} views at {args.res}², "
          f"{args.workers} workers")
    start = time.time()
    workers = max(1, min(args.workers, len(todo)))
    init = (settings, roots, max(1, (os.cpu_count() or 1) // workers))
    if workers == 1:
        if todo:
            _init_worker(*init)
        for instance in tqdm(todo, unit="car"):
            _write_car(instance, out)
    else:
        render_in_workers(todo, out, workers, init)
    manifest = {"cars": [i.manifest_entry() for i in instances], **{
        k: v for k, v in asdict(settings).items() if k in ("res", "views", "test_views",
                                                             "fov_deg", "radius")}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(todo)} cars in {time.time() - start:.1f} s to {out}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output folder")
    parser.add_argument("--source", choices=("all", "torcs", "procedural"), default="all",
                        help="which cars: all; torcs: only the real ones (--torcs, --sumo, "
                             "--flightgear; needs --torcs); procedural: only generated ones")
    parser.add_argument("--torcs", help="extracted torcs-data (the folder holding cars/, or the "
                                        "root of a dpkg -x extraction, or a --pack-torcs pack)")
    parser.add_argument("--cars", type=int, default=None, help="at most this many cars")
    parser.add_argument("--views", type=int, default=50, help="training views per car")
    parser.add_argument("--test-views", type=int, default=25, help="held-out views per car")
    parser.add_argument("--res", type=int, default=128, help="pixels per side of each view (default 128)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the camera poses, the paints and reshapes of real cars, and "
                             "which procedural cars are made (their ids carry it)")
    parser.add_argument("--sumo", help="SUMO's car models (the folder holding car-*.obj, or the "
                                       "root of an unzipped eclipse-sumo wheel): adds them and "
                                       "their repaints (--paints per model), all for training")
    parser.add_argument("--flightgear", help="FlightGear's road vehicles (Scenery/Models/Transport, "
                                             "or a folder above it): adds 24 models, their paint "
                                             "files and repaints (--paints per model), all for "
                                             "training")
    parser.add_argument("--procedural", type=int, default=220, help="procedural cars")
    parser.add_argument("--procedural-style", choices=PROCEDURAL_STYLES, nargs="+", default=["v1"],
                        help="v1: the shipped prior's cars; v2: more body types, liveries, "
                             "glass, wheels (tools/procedural_variety.py); both: --procedural "
                             "cars of each")
    parser.add_argument("--test-procedural", type=int, default=30,
                        help="of them, held out (split test), per style")
    parser.add_argument("--paints", type=int, default=8,
                        help="instances per real model: skins, then hue-shifted paints")
    parser.add_argument("--reshapes", type=int, default=0,
                        help="more cars per real training model: its proportions stretched "
                             "(wheelbase, cabin height, width), painted like its instances")
    parser.add_argument("--supersample", type=int, default=3, help="odd anti-aliasing factor")
    parser.add_argument("--separate-coplanar-faces", action="store_true",
                        help=f"move coplanar overlapping faces {COPLANAR_GAP:g} apart before rendering, "
                             "so no view shows two of them fighting in the depth buffer (off: the "
                             "default data set stays what cars.pt was trained on)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes rendering cars in parallel (default: one per CPU core)")
    parser.add_argument("--overwrite", action="store_true", help="re-render existing cars")
    parser.add_argument("--pack-torcs", nargs=2, metavar=("SRC", "DST"),
                        help="copy just the TORCS files the data set needs, textures as PNG")
    parser.add_argument("--pack-flightgear", nargs=2, metavar=("SRC", "DST"),
                        help="copy just the FlightGear files the data set needs")
    args = parser.parse_args(argv)
    if not args.pack_torcs and not args.pack_flightgear and not args.out:
        parser.error("--out is required")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_entry_point(lambda: make_or_pack(args), args.debug)


def make_or_pack(args: argparse.Namespace) -> None:
    if args.pack_torcs:
        from tools.torcs_pack import pack_torcs

        source = find_root("--pack-torcs", args.pack_torcs[0], find_torcs_root)
        size = pack_torcs(source, Path(args.pack_torcs[1]))
        print(f"packed {size / 1e6:.1f} MB into {args.pack_torcs[1]}")
        return
    if args.pack_flightgear:
        source = find_root("--pack-flightgear", args.pack_flightgear[0], find_flightgear_models)
        size = pack_flightgear(source, Path(args.pack_flightgear[1]))
        print(f"packed {size / 1e6:.1f} MB into {args.pack_flightgear[1]}")
        return
    make_dataset(args)


if __name__ == "__main__":
    sys.exit(main())
