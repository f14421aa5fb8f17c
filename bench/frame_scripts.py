"""What the GPU frame scripts (frame_path.py, interop_paths.py, depth_skip.py) share: the command
line, the renderer they time, how they report, and their main.

--res takes N or WxH (e.g. 1920x1080), as main.py does. A script that can also run on a CPU
(frame_path.py: to check it, not to measure a GPU's numbers) offers --device.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import DEFAULT_CKPT
from engine.benchmark import device_name
from engine.benchmark_report import ms_table
from engine.cli import OneLineParser, resolution_argument, run_entry_point
from models.cameras import orbit_pose
from models.checkpoint import Checkpoint, load_checkpoint
from models.renderer import LFNRenderer
from models.resolution import Resolution

DEVICE = torch.device("cuda")
# How each device renders: the GPU's fastest path; the CPU's default backend (a check only).
RENDERING = {"cuda": ("fp16", "triton"), "cpu": ("fp32", "torchscript")}


@dataclass(frozen=True)
class FrameScriptConfig:
    ckpt: Path
    resolutions: tuple[Resolution, ...]
    json: Path | None  # also write the rows here
    device: torch.device = DEVICE


def setup(ckpt: Checkpoint, device: torch.device) -> tuple[LFNRenderer, list[torch.Tensor]]:
    """The renderer of the checkpoint's first instance (RENDERING of the device) and 100 orbit poses."""
    renderer = LFNRenderer(ckpt.model, device, *RENDERING[device.type])
    renderer.set_latent(ckpt.latents[0])
    poses = [orbit_pose(360.0 * k / 100, 20.0, 3.0).to(device) for k in range(100)]
    return renderer, poses


def report(rows: list[dict], config: FrameScriptConfig) -> None:
    """The ms table on stdout, and the rows with the machine's name in --json."""
    precision, backend = RENDERING[config.device.type]
    env = {"device": device_name(config.device), "precision": precision, "backend": backend,
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"\n{env['device']}, {precision}, {backend} backend, ms per frame (median)")
    print(ms_table(rows, config.resolutions))
    if config.json:
        config.json.write_text(json.dumps({"env": env, "rows": rows}, indent=1) + "\n")
        print(f"wrote {config.json}")


Measure = Callable[[Resolution, list[torch.Tensor]], list[dict]]  # (res, poses) → result rows


def time_frames(config: FrameScriptConfig, measurer: Callable[[LFNRenderer], Measure]) -> int:
    """setup, then measurer(renderer) at every resolution, then report; exit status 2, after
    saying why, on CUDA without a CUDA device (the checkpoint is read first, so a bad one says so
    anywhere)."""
    ckpt = load_checkpoint(config.ckpt)
    if config.device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: this script runs on the GPU machine")
        return 2
    renderer, poses = setup(ckpt, config.device)
    measure = measurer(renderer)
    report([row for res in config.resolutions for row in measure(res, poses)], config)
    return 0


def run(description: str, measurer: Callable[[LFNRenderer], Measure],
        argv: list[str] | None = None, runs_on_cpu: bool = False) -> int:
    """A frame script's main: its command line (--ckpt, --res, --json, --debug, and --device where
    it `runs_on_cpu`), then time_frames under the entry-point contract (engine/cli.py)."""
    parser = OneLineParser(description=description.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                        help="LFN checkpoint; its first car is rendered "
                             "(default: the repository's checkpoints/cars.pt)")
    parser.add_argument("--res", type=resolution_argument, nargs="+", metavar="N|WxH",
                        default=[Resolution.square(side) for side in (256, 512, 1024)],
                        help="frame sizes timed, each N for N x N or WxH (default 256 512 1024)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.set_defaults(device="cuda")
    if runs_on_cpu:
        parser.add_argument("--device", choices=("cuda", "cpu"),
                            help="cpu: check the script on a machine without a GPU (default cuda)")
    args = parser.parse_args(argv)
    config = FrameScriptConfig(args.ckpt, tuple(args.res), args.json, torch.device(args.device))
    return run_entry_point(lambda: time_frames(config, measurer), args.debug)
