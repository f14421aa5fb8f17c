"""What the GPU frame scripts (frame_path.py, interop_paths.py, depth_skip.py) share: the command
line, the renderer they time, how they report, and their main."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.benchmark_report import ms_table
from engine.cli import OneLineParser, run_entry_point
from models.cameras import orbit_pose
from models.checkpoint import Checkpoint, load_checkpoint
from models.renderer import LFNRenderer

DEVICE = torch.device("cuda")


@dataclass(frozen=True)
class FrameScriptConfig:
    ckpt: Path
    resolutions: tuple[int, ...]
    json: Path | None  # also write the rows here


def setup(ckpt: Checkpoint) -> tuple[LFNRenderer, list[torch.Tensor]]:
    """The fp16 Triton renderer of the checkpoint's first instance and 100 orbit poses."""
    renderer = LFNRenderer(ckpt.model, DEVICE, "fp16", "triton")
    renderer.set_latent(ckpt.latents[0])
    poses = [orbit_pose(360.0 * k / 100, 20.0, 3.0).to(DEVICE) for k in range(100)]
    return renderer, poses


def report(rows: list[dict], config: FrameScriptConfig) -> None:
    """The ms table on stdout, and the rows with the machine's name in --json."""
    env = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"\n{env['gpu']}, fp16, Triton backend, ms per frame (median)")
    print(ms_table(rows, config.resolutions))
    if config.json:
        config.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1) + "\n")
        print(f"wrote {config.json}")


Measure = Callable[[int, list[torch.Tensor]], list[dict]]  # (res, poses) → result rows


def time_frames(config: FrameScriptConfig, measurer: Callable[[LFNRenderer], Measure]) -> int:
    """setup, then measurer(renderer) at every resolution, then report; exit status 2, after
    saying why, without a CUDA device (the checkpoint is read first, so a bad one says so anywhere)."""
    ckpt = load_checkpoint(config.ckpt)
    if not torch.cuda.is_available():
        print("no CUDA device: this script runs on the GPU machine")
        return 2
    renderer, poses = setup(ckpt)
    measure = measurer(renderer)
    report([row for res in config.resolutions for row in measure(res, poses)], config)
    return 0


def run(description: str, measurer: Callable[[LFNRenderer], Measure],
        argv: list[str] | None = None) -> int:
    """A frame script's main: its command line (--ckpt, --res, --json, --debug), then time_frames
    under the entry-point contract (engine/cli.py)."""
    parser = OneLineParser(description=description.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=Path("checkpoints/cars.pt"))
    parser.add_argument("--res", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    config = FrameScriptConfig(args.ckpt, tuple(args.res), args.json)
    return run_entry_point(lambda: time_frames(config, measurer), args.debug)
