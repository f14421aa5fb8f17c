"""Training throughput: the reference and the fast training step, timed in one run.

    python -m bench.train_throughput [--device auto|cuda|cpu] [--data DIR] [--objects 64]
        [--rays 1024 4096] [--steps 50] [--warmup 15] [--compile default reduce-overhead]
        [--width 256 --hidden-layers 6 --latent-dim 256] [--profile N] [--geometry-rays 128]
        [--json results/train_throughput_X.json]

Each variant trains a fresh model (same seed) for `--warmup` untimed steps, then `--steps` timed
steps exactly as tools.train runs them (ray draw from data resident on the device, forward,
loss, backward, Adam; engine/train_step.py). The reference is the step as it was before the fast
one existed: no non-finite check, as the loop had none. On CUDA each step is timed with CUDA
events on the GPU's timeline without a sync between steps (launches run ahead as in training);
on a CPU with the wall clock. Reported: the median step time and rays/s = rays per step / median.

Without --data the cars are random images of the shipped data set's shape (304 training cars,
50 training views, 128² px on CUDA; fewer and smaller on a CPU): the step's cost does not depend
on what the pixels show. `--geometry-rays N` also times each fast variant with the geometry term
(engine/reprojection.py, stereo form) on N rays of each car: its cost, not its effect.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/train_throughput.py` anywhere

from engine.benchmark import device_name  # noqa: E402
from engine.cardata import CarViews, load_cars  # noqa: E402
from engine.cli import OneLineParser, UsageError, run_entry_point, write_json  # noqa: E402
from engine.reprojection import GeometryConfig, ReprojectionLoss  # noqa: E402
from engine.train_step import COMPILE_MODES, draw_batch, make_training_step  # noqa: E402
from models.cameras import intrinsics, orbit_pose  # noqa: E402
from models.lfn import LFNConfig, LightFieldNetwork  # noqa: E402


def random_cars(cars: int, views: int, res: int, device: torch.device) -> CarViews:
    """Random pixels at orbit poses: the shapes of a real data set, on the device."""
    gen = torch.Generator().manual_seed(0)
    poses = torch.stack([orbit_pose(360.0 * v / views, 15.0 + 10 * (v % 3)) for v in range(views)])
    return CarViews(
        ids=[f"random{c:03d}" for c in range(cars)],
        rgb=torch.randint(0, 256, (cars, views, res, res, 3), dtype=torch.uint8, generator=gen),
        cam2world=poses.expand(cars, -1, -1, -1).contiguous(),
        intrinsics=intrinsics(res, res),
        train_view=torch.ones(views, dtype=torch.bool),
    ).to(device)


def step_times(cars: CarViews, impl: str, compile_mode: str, objects: int, rays: int,
               arch: dict, steps: int, warmup: int, device: torch.device,
               profiled: int = 0, geometry_rays: int = 0) -> tuple[list[float], float, str | None]:
    """Seconds of each timed step, the loss of the last one, and (profiled > 0) the profiler's
    table of that many further steps: where a step's time goes, kernel by kernel."""
    torch.manual_seed(0)
    model = LightFieldNetwork(LFNConfig(num_instances=cars.rgb.shape[0], **arch)).to(device)
    views = torch.nonzero(cars.train_view).flatten().to(device)
    geometry = ReprojectionLoss(cars, views, GeometryConfig(0.3, geometry_rays)) if geometry_rays else None
    step_fn = make_training_step(model, impl, lr=5e-4, latent_lr=1e-3, latent_weight=1e-4,
                                 device=device, compile_mode=compile_mode,
                                 skip_nonfinite=impl != "reference", geometry=geometry)
    generator = torch.Generator(device=device)

    def one_step(i: int):
        generator.manual_seed(i)
        return step_fn(draw_batch(cars, views, objects, rays, generator, impl), lr_scale=1.0)

    for i in range(warmup):
        one_step(i)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                  for _ in range(steps)]
        for i, (start, end) in enumerate(events):
            start.record()
            result = one_step(warmup + i)
            end.record()
        torch.cuda.synchronize(device)
        times = [start.elapsed_time(end) / 1e3 for start, end in events]
    else:
        times = []
        for i in range(steps):
            tick = time.perf_counter()
            result = one_step(warmup + i)
            times.append(time.perf_counter() - tick)
    table = profile_table(one_step, warmup + steps, profiled, device) if profiled else None
    return times, result.loss.item(), table


def profile_table(one_step, first: int, steps: int, device: torch.device) -> str:
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        for i in range(steps):
            one_step(first + i)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device if args.device != "auto"
                          else "cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.type == "cuda"
    if args.data:
        cars = load_cars(args.data, "train").to(device)
    else:
        cars = random_cars(args.cars or (304 if on_gpu else 16), args.views or (50 if on_gpu else 8),
                           args.res or (128 if on_gpu else 64), device)
    arch = {"latent_dim": args.latent_dim, "width": args.width, "hidden_layers": args.hidden_layers}
    load_before = os.getloadavg()[0]  # a shared CPU: other jobs slow the steps down
    plain = [("reference", "off", 0), ("fast", "off", 0)] + [("fast", m, 0) for m in args.compile]
    variants = plain + [("fast", m, g) for g in args.geometry_rays
                        for m in ("off", *args.compile)]
    rows = []
    for rays in args.rays:
        for impl, compile_mode, geometry_rays in variants:
            times, loss, table = step_times(cars, impl, compile_mode, args.objects, rays, arch,
                                            args.steps, args.warmup, device, args.profile,
                                            geometry_rays)
            median = statistics.median(times)
            rows.append({"impl": impl, "compile": compile_mode, "objects_per_step": args.objects,
                         "rays_per_object": rays, "geometry_rays": geometry_rays,
                         "rays_per_step": args.objects * rays,
                         "median_ms": round(median * 1e3, 3),
                         "mean_ms": round(statistics.fmean(times) * 1e3, 3),
                         "rays_per_s": round(args.objects * rays / median),
                         "last_loss": loss, "profile": table})
            print(f"{impl:9s} compile={compile_mode:26s} geometry={geometry_rays:<4d} "
                  f"{args.objects}x{rays}: "
                  f"{median * 1e3:8.2f} ms/step  {rows[-1]['rays_per_s'] / 1e6:8.3f} M rays/s")
    for row in rows:  # the speed-up over the reference at the same batch shape
        base = next(r for r in rows if r["impl"] == "reference"
                    and r["rays_per_object"] == row["rays_per_object"])
        row["speedup"] = round(base["median_ms"] / row["median_ms"], 3)
    if args.profile:  # the last variant's table; every variant's is in the JSON
        print(f"profile of {args.profile} steps, {rows[-1]['impl']} compile={rows[-1]['compile']}, "
              f"{args.objects}x{rows[-1]['rays_per_object']}:\n{rows[-1]['profile']}")
    return {
        "device": device.type, "device_name": device_name(device), "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": args.data or {"random_cars": cars.rgb.shape[0], "views": cars.rgb.shape[1],
                              "res": cars.resolution},
        "architecture": arch, "steps_timed": args.steps, "warmup_steps": args.warmup,
        "autocast": "bf16" if on_gpu else "off (fp32)",
        "timer": "CUDA events, no sync between steps" if on_gpu else "wall clock per step",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "variants": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"),
                   help="where it trains; auto: cuda when available (default auto)")
    p.add_argument("--data", help="a data set folder (default: random cars of its shape)")
    p.add_argument("--cars", type=int, help="random cars (default 304 on CUDA, 16 on a CPU)")
    p.add_argument("--views", type=int, help="random views per car (default 50 / 8)")
    p.add_argument("--res", type=int, help="random image size (default 128 / 64)")
    p.add_argument("--objects", type=int, default=64, help="cars per step (default 64)")
    p.add_argument("--rays", type=int, nargs="+", default=[1024],
                   help="rays per car and step; several values time several batch shapes")
    p.add_argument("--steps", type=int, default=50, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=15, help="untimed steps first")
    p.add_argument("--compile", nargs="*", default=[], choices=COMPILE_MODES[1:],
                   help="also time the fast step under torch.compile in these modes")
    p.add_argument("--width", type=int, default=256, help="the LFN's hidden units per layer (default 256)")
    p.add_argument("--hidden-layers", type=int, default=6, help="the LFN's hidden layers (default 6)")
    p.add_argument("--latent-dim", type=int, default=256,
                   help="length of each car's latent code (default 256)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after timing, profile N more steps of each variant (torch.profiler; "
                        "tables in the JSON, the last one printed)")
    p.add_argument("--geometry-rays", type=int, nargs="*", default=[], metavar="N",
                   help="also time each fast variant with the geometry term on N rays a car")
    p.add_argument("--json", type=Path, help="also write the result as JSON")
    args = p.parse_args(argv)
    return run_entry_point(lambda: measure_and_write(args), args.debug)


def measure_and_write(args: argparse.Namespace) -> None:
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available on this machine")
    result = run(args)
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    sys.exit(main())
