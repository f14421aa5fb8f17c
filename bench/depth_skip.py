"""What skipping saturated tiles saves gradient depth on a GPU: the reverse passes with and without it.

    python bench/depth_skip.py [--ckpt checkpoints/cars.pt] [--res 256 512 1024] [--json PATH]

TritonLFN.depth_equations skips the reverse passes of a tile whose colors all saturated (the white
background around the object: sigmoid' exactly 0). Both variants run on the same orbit in one
process, per-channel and summed, kernels only (CUDA events, warm-up, median over 100 poses), and
every pose's equations must be equal bit for bit. Also reported: the share of tiles skipped.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/depth_skip.py` from anywhere

from bench.frame_scripts import run  # noqa: E402
from engine.timing import median_p90, time_frames  # noqa: E402
from models.resolution import Resolution  # noqa: E402
from models.triton_lfn import TUNE_CONFIGS, TritonLFN  # noqa: E402

WARMUP = 10
TILE = TUNE_CONFIGS["depth"][0][0]  # the reverse pass's rays per program on the GPU


def saturated_share(equations: torch.Tensor) -> float:
    """The share of TILE-ray tiles whose colors (equations' first 3 columns) all saturated."""
    color = equations[:, :3]
    slope = (color * (1 - color)).amax(1)
    tiles = torch.nn.functional.pad(slope, (0, -slope.numel() % TILE), value=0.0).view(-1, TILE)
    return float((tiles.amax(1) == 0).float().mean())


def equations_frame(kernel: TritonLFN, res: Resolution, summed: bool, out: torch.Tensor, skip: bool):
    return lambda pose: kernel.depth_equations(pose, res, summed, out=out, skip_saturated=skip)


def measure_res(kernel: TritonLFN, res: Resolution, poses: list[torch.Tensor]) -> list[dict]:
    rows = []
    for summed in (False, True):
        outputs = {skip: torch.empty(res.pixels, 5, device=poses[0].device) for skip in (True, False)}
        share = []
        for pose in poses:  # the same equations, bit for bit, at every pose
            for skip, out in outputs.items():
                equations_frame(kernel, res, summed, out, skip)(pose)
            if not torch.equal(outputs[True], outputs[False]):
                raise AssertionError(f"skipping changed the equations at {res.label}, summed={summed}")
            share.append(saturated_share(outputs[True]))
        for skip, out in outputs.items():
            frame = equations_frame(kernel, res, summed, out, skip)
            for k in range(WARMUP):
                frame(poses[k % len(poses)])
            median, p90 = median_p90(time_frames(frame, poses, poses[0].device))
            rows.append({
                "variant": f"{'summed' if summed else 'per-channel'}{' skip' if skip else ''}",
                "res": str(res), "median_ms": median, "p90_ms": p90, "fps": 1000.0 / median,
                "saturated_tiles_median": sorted(share)[len(share) // 2],
            })
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(run(__doc__, lambda renderer: functools.partial(measure_res, renderer.ray_backend.kernel)))
