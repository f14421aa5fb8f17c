"""Data-parallel training: the same training on 1 GPU and on N GPUs, back to back in one call.

    python -m bench.ddp_scaling --data data/cars --minutes 3 --gpus 2 --out runs/ddp \\
        --json results/ddp_scaling.json --chart docs/ddp_scaling.png --views-png docs/ddp_views.png \\
        [-- more tools.train flags]
    python -m bench.ddp_scaling --chart docs/ddp_scaling.png --from results/ddp_scaling.json

Both runs are `tools.train` with the same flags (the per-GPU batch and the learning rate are kept;
TRAINING.md says why): first one process on GPU 0, then `torchrun --nproc-per-node N`. Reported:
each run's throughput (median rays/s over its logged windows, the first one skipped as warm-up)
and the scaling efficiency; the loss/PSNR curves against training time; the N-GPU run's replica
checks (every rank's weights and latent codes against rank 0's); and both final checkpoints, loaded
back from disk as a user would, scored by tools.evaluate through the viewer's renderer.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/ddp_scaling.py` from anywhere

from engine.benchmark import device_name  # noqa: E402
from engine.cardata import load_cars  # noqa: E402
from engine.cli import OneLineParser, UsageError, run_entry_point, write_json  # noqa: E402
from engine.evaluation import evaluate  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.renderer import make_renderer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def train_command(gpus: int, data: str, out: Path, minutes: float, extra: tuple[str, ...]) -> list[str]:
    launcher = [sys.executable, "-m", "tools.train"] if gpus == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc-per-node", str(gpus), "-m", "tools.train"]
    return [*launcher, "--data", data, "--out", str(out), "--minutes", str(minutes), *extra]


def run_training(gpus: int, data: str, out: Path, minutes: float, extra: tuple[str, ...]) -> float:
    """Train into `out` (a fresh folder); the wall time of the whole command, start-up included."""
    if (out / "log.jsonl").exists():
        raise UsageError(f"{out} holds an earlier run; give a new --out")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=",".join(str(i) for i in range(gpus)))
    start = time.perf_counter()
    subprocess.run(train_command(gpus, data, out, minutes, extra), cwd=ROOT, env=env, check=True)
    return time.perf_counter() - start


def summarize_log(out: Path) -> dict:
    """Throughput, curves and replica checks from one run's log.jsonl."""
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    windows = [r for r in rows if "loss" in r]
    timed = windows[1:] or windows  # the first window holds CUDA and NCCL start-up
    return {
        "world": windows[-1]["world"],
        "steps": windows[-1]["step"],
        "train_seconds": windows[-1]["seconds"],
        "rays_per_s_median": statistics.median(r["rays_per_s"] for r in timed),
        "curve": [{k: r[k] for k in ("step", "seconds", "loss", "psnr")} for r in windows],
        "heldout": [{k: r[k] for k in ("step", "seconds", "heldout_psnr")}
                    for r in rows if "heldout_psnr" in r],
        "replica_checks": [r for r in rows if "replica_max_abs_diff" in r],
    }


def side_by_side(checkpoints: list[Path], data: str, device: torch.device, cars: int,
                 path: Path) -> None:
    """Rows of cars, columns: the ground truth of a held-out view, then each checkpoint's render."""
    seen = load_cars(data, "train", limit=cars)
    view = int(torch.nonzero(~seen.train_view).flatten()[0])
    renderers = []
    for ckpt_path in checkpoints:
        ckpt = load_checkpoint(ckpt_path)
        renderers.append((make_renderer(ckpt.model.to(device), device, "fp32", "eager"),
                          {name: i for i, name in enumerate(ckpt.instance_names)}, ckpt))
    rows = []
    for c, car_id in enumerate(seen.ids):
        tiles = [seen.rgb[c, view].numpy()]
        for renderer, index, ckpt in renderers:
            renderer.set_latent(ckpt.latents[index[car_id]])
            image = renderer.render(seen.cam2world[c, view], seen.resolution).float().clamp(0, 1)
            tiles.append((image.cpu().numpy() * 255).round().astype(np.uint8))
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def plot(result: dict, path: Path) -> None:
    """Training PSNR (per batch) and held-out-view PSNR against training time, one line per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg on its own: no global backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=120)
    FigureCanvasAgg(fig)
    batch, heldout = fig.subplots(1, 2)
    for run in result["runs"].values():
        label = f"{run['world']} GPU{'s' if run['world'] > 1 else ''}: " \
                f"{run['rays_per_s_median'] / 1e6:.1f} M rays/s"
        seconds = np.array([r["seconds"] for r in run["curve"]])
        psnr = np.array([r["psnr"] for r in run["curve"]])
        smooth = np.convolve(psnr, np.ones(9) / 9, mode="valid") if len(psnr) >= 9 else psnr
        batch.plot(seconds[len(seconds) - len(smooth):], smooth, label=label)
        heldout.plot([r["seconds"] for r in run["heldout"]],
                     [r["heldout_psnr"] for r in run["heldout"]], marker="o", label=label)
    batch.set(xlabel="training time (s)", ylabel="PSNR of the training batch (dB, 9-window mean)")
    heldout.set(xlabel="training time (s)", ylabel="PSNR on held-out views (dB)")
    for ax in (batch, heldout):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['gpus']} GPUs vs 1: scaling efficiency "
                 f"{result['scaling_efficiency']:.0%}, {result['device_name']}, {result['date']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


@dataclass(frozen=True)
class ScalingRun:
    """What both training runs and their evaluation use."""

    data: str
    gpus: int
    minutes: float
    out: Path  # gpus_1/ and gpus_N/ are written under it
    train_args: tuple[str, ...]  # more tools.train flags for both runs
    device: torch.device  # where the trained checkpoints are evaluated
    fit_steps: int
    eval_cars: int
    eval_views: int
    views_png: Path | None


def measure(scaling: ScalingRun) -> dict:
    runs, checkpoints = {}, []
    for gpus in (1, scaling.gpus):
        out = scaling.out / f"gpus_{gpus}"
        wall = run_training(gpus, scaling.data, out, scaling.minutes, scaling.train_args)
        run = summarize_log(out) | {"wall_seconds": round(wall, 1)}
        ckpt = load_checkpoint(out / "model.pt")  # from disk, as a user loads it
        run["checkpoint_meta"] = {k: ckpt.meta.get(k) for k in ("steps", "world_size", "replicas")}
        run["evaluation"] = evaluate(ckpt, Path(scaling.data), scaling.device, scaling.fit_steps,
                                     max_cars=scaling.eval_cars, max_views=scaling.eval_views).to_json()
        runs[str(gpus)] = run
        checkpoints.append(out / "model.pt")
    if scaling.views_png:
        side_by_side(checkpoints, scaling.data, scaling.device, scaling.eval_cars or 4, scaling.views_png)
    single, multi = runs["1"]["rays_per_s_median"], runs[str(scaling.gpus)]["rays_per_s_median"]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device_name": device_name(scaling.device),
        "torch": torch.__version__,
        "gpus": scaling.gpus,
        "minutes": scaling.minutes,
        "train_args": list(scaling.train_args),
        "scaling_efficiency": multi / (scaling.gpus * single),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="the car data set both runs train on")
    p.add_argument("--minutes", type=float, default=3.0, help="training time of each run")
    p.add_argument("--gpus", type=int, default=2,
                   help="GPUs of the data-parallel run, compared with 1 (at least 2; default 2)")
    p.add_argument("--out", type=Path, default=Path("runs/ddp_scaling"),
                   help="folder the runs train into, gpus_1/ and gpus_N/ (no earlier run there; "
                        "default runs/ddp_scaling)")
    p.add_argument("--json", type=Path, help="write the result here (chart it later with --from)")
    p.add_argument("--chart", type=Path, help="write the curves chart here")
    p.add_argument("--views-png", type=Path, help="ground truth | 1 GPU | N GPUs, a held-out view")
    p.add_argument("--from", dest="from_json", type=Path, help="chart an earlier --json, train nothing")
    p.add_argument("--eval-cars", type=int, default=12,
                   help="cars per split tools.evaluate scores of each checkpoint, and the rows of "
                        "--views-png (default 12)")
    p.add_argument("--eval-views", type=int, default=10,
                   help="views per car tools.evaluate scores (default 10)")
    p.add_argument("--fit-steps", type=int, default=300,
                   help="steps of each single-image fit in the evaluation (default 300)")
    p.add_argument("--device", type=torch.device,
                   default=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
                   help="where the checkpoints are evaluated; cpu also trains on the CPU "
                        "(default: cuda when available)")
    p.add_argument("train_args", nargs="*", help="after --: more tools.train flags for both runs")
    args = p.parse_args(argv)
    if args.gpus < 2:
        p.error(f"--gpus {args.gpus}: compare 1 GPU with 2 or more")
    if not (args.from_json or args.data):
        p.error("give --data to train, or --from to chart an earlier result")
    scaling = None
    if not args.from_json:
        train_args = (*args.train_args, *(("--device", "cpu") if args.device.type == "cpu" else ()))
        scaling = ScalingRun(args.data, args.gpus, args.minutes, args.out, train_args, args.device,
                             args.fit_steps, args.eval_cars, args.eval_views, args.views_png)
    return run_entry_point(lambda: report(scaling, args.from_json, args.json, args.chart), args.debug)


def read_earlier(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"--from {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"--from {path}: not a JSON result ({error})") from None


def report(scaling: ScalingRun | None, earlier: Path | None, json_path: Path | None,
           chart: Path | None) -> None:
    """Measure (or read the earlier result), then write --json and --chart and a summary line."""
    result = measure(scaling) if scaling is not None else read_earlier(earlier)
    if json_path:
        write_json(json_path, result)
    if chart:
        plot(result, chart)
    runs = result["runs"]
    print(" | ".join(f"{n} GPU: {r['rays_per_s_median'] / 1e6:.2f} M rays/s, held-out "
                     f"{r['evaluation']['psnr_heldout_views']:.2f} dB" for n, r in runs.items())
          + f" | efficiency {result['scaling_efficiency']:.0%}")


if __name__ == "__main__":
    sys.exit(main())
