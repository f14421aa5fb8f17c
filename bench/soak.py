"""Soak test: render many frames headless while the camera and the latent change, and check that
memory does not grow.

    python -m bench.soak --ckpt checkpoints/cars.pt --frames 10000 --res 64 [--device cpu|cuda]
                         [--json PATH]

Frames go through the viewer's own FrameRenderer (latent folding, render, device sync) and are
copied to host memory as 8-bit pixels, as an export does. The camera sweeps an orbit (azimuth
every frame, elevation slowly up and down); the latent moves from each instance to the next
through interpolated codes, so every frame folds a new latent. Memory is read after the warm-up
frames (tracing, allocator pools and caches settle there) and after the last frame: resident set
size from /proc/self/statm and, on CUDA, torch.cuda.memory_allocated. Growth of either by
GROWTH_LIMIT or more is a failure: exit 1.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/soak.py` from anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from engine.benchmark import device_name  # noqa: E402
from engine.cli import OneLineParser, UsageError, run_entry_point  # noqa: E402
from engine.display_mode import DisplayMode  # noqa: E402
from engine.frame import FrameRenderer, FrameRequest  # noqa: E402
from engine.latents import BlendLatent, InstanceLatent, LatentBank, LatentSelection  # noqa: E402
from engine.memory import MB, rss_bytes, trim_heap  # noqa: E402
from models.cameras import Orbit  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.renderer import default_precision, make_renderer  # noqa: E402

GROWTH_LIMIT = 0.02
WARMUP_FRAMES = 50
AZIMUTH_STEP = 3.0  # degrees per frame: one turn every 120 frames
ELEVATION_PERIOD = 500  # frames for one swing of the elevation between its bounds
ELEVATION_RANGE = (5.0, 45.0)
MIX_FRAMES = 25  # frames from one instance's code to the next one's
SAMPLES = 20  # memory readings along the run, for the JSON trace


def soak_request(frame: int, instances: int, res: int) -> FrameRequest:
    """The camera and latent of frame `frame`: a new orbit pose and a new latent code every frame."""
    low, high = ELEVATION_RANGE
    swing = 0.5 - 0.5 * math.cos(2 * math.pi * frame / ELEVATION_PERIOD)
    orbit = Orbit(azimuth=(AZIMUTH_STEP * frame) % 360.0, elevation=low + (high - low) * swing)
    a, step = divmod(frame, MIX_FRAMES)
    a %= instances
    latent: LatentSelection = (
        InstanceLatent(a) if step == 0 else BlendLatent(a, (a + 1) % instances, step / MIX_FRAMES)
    )
    return FrameRequest(orbit, res, DisplayMode.RGB, latent)


@dataclass
class MemoryReading:
    frame: int
    rss_mb: float
    cuda_mb: float | None  # torch.cuda.memory_allocated; None on the CPU


def read_memory(frame: int, device: torch.device) -> MemoryReading:
    # Collect garbage and return freed heap pages first: growth should count what is still held,
    # not what the allocator happens to cache.
    gc.collect()
    trim_heap()
    cuda_mb = None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        cuda_mb = torch.cuda.memory_allocated(device) / MB
    return MemoryReading(frame, rss_bytes() / MB, cuda_mb)


def growth(start: float, end: float) -> float:
    """Relative growth from start to end; memory that starts at zero grows infinitely if at all."""
    if start <= 0:
        return 0.0 if end <= 0 else math.inf
    return (end - start) / start


def soak(
    frames: FrameRenderer, instances: int, res: int, count: int, warmup: int = WARMUP_FRAMES,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Render `warmup` then `count` frames; memory readings at the start, along the way and the end."""
    device = frames.renderer.device
    for k in range(warmup):
        frames.render(soak_request(k, instances, res)).image.cpu()
    readings = [read_memory(0, device)]
    every = max(1, count // SAMPLES)
    start = time.perf_counter()
    for k in range(1, count + 1):
        frame = frames.render(soak_request(warmup + k - 1, instances, res))
        (frame.image.float().clamp(0, 1) * 255).to(torch.uint8).cpu()  # the export's host copy
        if k % every == 0 or k == count:
            readings.append(read_memory(k, device))
            if progress:
                progress(f"frame {k}/{count}: RSS {readings[-1].rss_mb:.1f} MB")
    seconds = time.perf_counter() - start
    first, last = readings[0], readings[-1]
    rss_growth = growth(first.rss_mb, last.rss_mb)
    cuda_growth = None if first.cuda_mb is None else growth(first.cuda_mb, last.cuda_mb)
    return {
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "res": res, "frames": count, "warmup": warmup, "seconds": round(seconds, 1),
        "fps": count / seconds, "rss_start_mb": first.rss_mb, "rss_end_mb": last.rss_mb,
        "rss_growth": rss_growth, "cuda_start_mb": first.cuda_mb, "cuda_end_mb": last.cuda_mb,
        "cuda_growth": cuda_growth, "growth_limit": GROWTH_LIMIT,
        "passed": rss_growth < GROWTH_LIMIT and (cuda_growth is None or cuda_growth < GROWTH_LIMIT),
        "readings": [asdict(r) for r in readings],
    }


def summary(result: dict) -> str:
    cuda = "n/a" if result["cuda_growth"] is None else (
        f"{result['cuda_start_mb']:.1f} -> {result['cuda_end_mb']:.1f} MB "
        f"({100 * result['cuda_growth']:+.2f} %)"
    )
    verdict = "ok" if result["passed"] else f"FAIL: growth >= {100 * GROWTH_LIMIT:.0f} %"
    return (
        f"soak: {result['frames']} frames at {result['res']}x{result['res']} on {result['device']} "
        f"in {result['seconds']:.0f} s ({result['fps']:.1f} fps): RSS {result['rss_start_mb']:.1f} -> "
        f"{result['rss_end_mb']:.1f} MB ({100 * result['rss_growth']:+.2f} %), CUDA {cuda}: {verdict}"
    )


@dataclass(frozen=True)
class SoakConfig:
    ckpt: Path
    device: torch.device
    res: int
    frames: int
    warmup: int
    quiet: bool  # no progress lines, only the summary
    json: Path | None


def parse_args(argv: list[str] | None) -> tuple[SoakConfig, bool]:
    """The soak's settings from the command line, and whether --debug was given."""
    p = OneLineParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                   help="LFN checkpoint (default: the repository's checkpoints/cars.pt)")
    p.add_argument("--frames", type=int, default=10_000, help="frames after the warm-up")
    p.add_argument("--warmup", type=int, default=WARMUP_FRAMES, help="frames before the first reading")
    p.add_argument("--res", type=int, default=None,
                   help="square resolution, 16..4096 (default 64 on the CPU, 256 on CUDA)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the frames render; auto: cuda when available (default auto)")
    p.add_argument("--json", type=Path, help="write the result, with every memory reading, as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")
    args = p.parse_args(argv)
    if args.frames < 1 or args.warmup < 0:
        p.error("--frames must be at least 1 and --warmup at least 0")
    if args.res is not None and not 16 <= args.res <= 4096:
        p.error(f"--res {args.res} is outside 16..4096")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: CUDA is not available on this machine")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    res = args.res or (256 if device.type == "cuda" else 64)
    config = SoakConfig(args.ckpt, device, res, args.frames, args.warmup, args.quiet, args.json)
    return config, args.debug


def soak_checkpoint(config: SoakConfig) -> int:
    """The soak of the checkpoint's LFN, its summary on stdout; exit status 1 when it failed."""
    ckpt = load_checkpoint(config.ckpt)
    if ckpt.model.kind != "lfn":
        raise UsageError(f"--ckpt {config.ckpt}: is a {ckpt.model.kind} checkpoint, not an LFN")
    device = config.device
    renderer = make_renderer(ckpt.model, device, default_precision(device))
    frames = FrameRenderer(renderer, LatentBank.of_checkpoint(ckpt))
    result = soak(frames, len(ckpt.instance_names), config.res, config.frames, config.warmup,
                  None if config.quiet else lambda line: print(line, flush=True))
    result["checkpoint"] = str(config.ckpt)
    print(summary(result))
    if config.json is not None:
        config.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    config, debug = parse_args(argv)
    return run_entry_point(lambda: soak_checkpoint(config), debug)


if __name__ == "__main__":
    sys.exit(main())
