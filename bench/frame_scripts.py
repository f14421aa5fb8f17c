"""What the GPU frame scripts (frame_path.py, interop_paths.py, depth_skip.py) share: the command
line, the renderer they time, how they report, and their main."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from engine.benchmark_report import ms_table
from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.renderer import LFNRenderer

DEVICE = torch.device("cuda")


def setup(description: str) -> tuple[argparse.Namespace, LFNRenderer, list[torch.Tensor]] | None:
    """The command line (--ckpt, --res, --json), then the fp16 Triton renderer of the checkpoint's
    first instance and 100 orbit poses; None, after saying why, without a CUDA device."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=Path("checkpoints/cars.pt"))
    parser.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this script runs on the GPU machine")
        return None
    ckpt = load_checkpoint(args.ckpt)
    renderer = LFNRenderer(ckpt.model, DEVICE, "fp16", "triton")
    renderer.set_latent(ckpt.latents[0])
    poses = [orbit_pose(360.0 * k / 100, 20.0, 3.0).to(DEVICE) for k in range(100)]
    return args, renderer, poses


def report(rows: list[dict], args: argparse.Namespace) -> None:
    """The ms table on stdout, and the rows with the machine's name in --json."""
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"\n{env['gpu']}, fp16, Triton backend, ms per frame (median)")
    print(ms_table(rows, args.res))
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")


Measure = Callable[[int, list[torch.Tensor]], list[dict]]  # (res, poses) → result rows


def run(description: str, measurer: Callable[[LFNRenderer], Measure]) -> int:
    """A frame script's main: setup, then measurer(renderer) at every --res, then report; exit
    status 2 without a CUDA device."""
    found = setup(description)
    if found is None:
        return 2
    args, renderer, poses = found
    measure = measurer(renderer)
    report([row for res in args.res for row in measure(res, poses)], args)
    return 0
