"""How fast single-image reconstruction converges: novel-view PSNR of held-out cars after 1, 2, 5
and 10 seconds of fitting (what a viewer user sees while the fit runs).

    python -m bench.fit_speed --ckpt checkpoints/cars.pt --data data/cars_small [--device cpu]
        [--json PATH] [--cars N] [--views N] [--rays N] [--lr X]

Each held-out car (split "test") is observed in one view, its first training view as in
tools.evaluate; a fresh latent is fitted to it (network frozen, random ray batches) and the latent
reached by each time budget is scored afterwards on the car's test views at the data set's
resolution, so scoring never eats into the fitting clock. "0 s" is the starting latent (the mean
of the table).
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/fit_speed.py` from anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from engine.benchmark import device_name  # noqa: E402
from engine.cardata import load_cars  # noqa: E402
from engine.cli import OneLineParser, run_entry_point  # noqa: E402
from engine.evaluation import INPUT_VIEW  # noqa: E402
from engine.metrics import psnr  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.fitting import fit_latent_steps  # noqa: E402
from models.renderer import make_renderer  # noqa: E402

BUDGETS_S = (1.0, 2.0, 5.0, 10.0)
WARMUP_STEPS = 3  # one-off allocator and thread-pool start-up; a viewer has paid it already


def fit_with_budgets(model, rgb: torch.Tensor, pose: torch.Tensor, intrinsics: torch.Tensor,
                     budgets: tuple[float, ...], options: dict) -> list[tuple[int, torch.Tensor]]:
    """(steps done, latent) as they stood at each budget in seconds: the last step finished by then."""
    device = next(model.parameters()).device
    marks: list[tuple[int, torch.Tensor]] = []
    last = (0, model.latents.weight.detach().mean(0))
    start = time.perf_counter()
    for step in fit_latent_steps(model, rgb, pose, intrinsics, **options):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        while len(marks) < len(budgets) and elapsed > budgets[len(marks)]:
            marks.append(last)
        if len(marks) == len(budgets):
            return marks
        last = (step.step, step.latent)
    raise AssertionError("fit_latent_steps ended")  # it yields forever


def score(renderer, latent: torch.Tensor, rgb: torch.Tensor, poses: torch.Tensor) -> float:
    """Mean PSNR over the given views rendered with `latent`."""
    renderer.set_latent(latent)
    res = rgb.shape[1]
    values = [psnr(renderer.render(pose, res).float().cpu(), target.float() / 255)
              for pose, target in zip(poses, rgb, strict=True)]
    return sum(values) / len(values)


def run(ckpt_path: Path, data: Path, device: torch.device, cars: int, views: int | None,
        options: dict) -> dict:
    load_before = os.getloadavg()[0]  # these CPUs are shared: other jobs slow the fit down
    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.model.to(device)
    renderer = make_renderer(model, device, "fp32")
    unseen = load_cars(data, "test", limit=cars)
    test_views = torch.nonzero(~unseen.train_view).flatten()[:views]
    observed = slice(INPUT_VIEW, INPUT_VIEW + 1)
    warmup = fit_latent_steps(model, unseen.rgb[0, observed], unseen.cam2world[0, observed],
                              unseen.intrinsics, **options)
    for _ in range(WARMUP_STEPS):
        next(warmup)
    warmup.close()
    rows = []
    for c, car_id in enumerate(unseen.ids):
        marks = fit_with_budgets(model, unseen.rgb[c, observed], unseen.cam2world[c, observed],
                                 unseen.intrinsics, BUDGETS_S, options)
        targets, poses = unseen.rgb[c, test_views], unseen.cam2world[c, test_views]
        start = score(renderer, model.latents.weight.detach().mean(0), targets, poses)
        rows.append({
            "car": car_id,
            "psnr": {"0": start} | {f"{b:g}": score(renderer, latent, targets, poses)
                                    for b, (_, latent) in zip(BUDGETS_S, marks, strict=True)},
            "steps": {f"{b:g}": steps for b, (steps, _) in zip(BUDGETS_S, marks, strict=True)},
        })
    budgets = ["0"] + [f"{b:g}" for b in BUDGETS_S]
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "date": datetime.now().isoformat(timespec="seconds"),
        "ckpt": str(ckpt_path),
        "data": str(data),
        "resolution": unseen.resolution,
        "input_view": INPUT_VIEW,
        "test_views_scored": len(test_views),
        "options": options,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "cars": rows,
        "mean_psnr": {b: sum(r["psnr"][b] for r in rows) / len(rows) for b in budgets},
    }


def format_table(result: dict) -> str:
    budgets = list(result["mean_psnr"])
    head = ["car"] + [f"{b} s" for b in budgets] + ["steps@" + budgets[-1] + "s"]
    rows = [head] + [
        [r["car"]] + [f"{r['psnr'][b]:.2f}" for b in budgets] + [str(r["steps"][budgets[-1]])]
        for r in result["cars"]
    ] + [["mean"] + [f"{result['mean_psnr'][b]:.2f}" for b in budgets] + [""]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(-1, "-" * len(lines[0]))
    options = ", ".join(f"{k}={v}" for k, v in result["options"].items())
    return (f"novel-view PSNR (dB) after fitting for N seconds; {result['device_name']}, "
            f"{result['resolution']}² px, {result['test_views_scored']} test views per car, {options}; "
            f"load average {' -> '.join(map(str, result['load_average_1min']))}\n"
            + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                   help="the LFN checkpoint, network frozen (default: the repository's checkpoints/cars.pt)")
    p.add_argument("--data", type=Path, default=Path("data/cars_small"),
                   help="a data set with held-out (test) cars (default data/cars_small)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the fits run (default: cuda when available, else cpu)")
    p.add_argument("--json", type=Path, help="also write the result as JSON")
    p.add_argument("--cars", type=int, default=3, help="held-out cars to fit (default 3)")
    p.add_argument("--views", type=int, help="score at most this many test views per car")
    p.add_argument("--rays", type=int, help="rays per fitting step (default: models.fitting's)")
    p.add_argument("--lr", type=float, help="fitting learning rate (default: models.fitting's)")
    args = p.parse_args(argv)
    defaults = inspect.signature(fit_latent_steps).parameters
    options = {k: defaults[k].default if v is None else v
               for k, v in (("rays_per_step", args.rays), ("lr", args.lr))}
    return run_entry_point(lambda: report(run(args.ckpt, args.data, torch.device(args.device),
                                              args.cars, args.views, options), args.json),
                           args.debug)


def report(result: dict, json_path: Path | None) -> None:
    print(format_table(result))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
