"""Where a viewer frame's time goes on a GPU: the render, the CUDA-GL texture write, the GL finish.

    python bench/frame_path.py [--ckpt checkpoints/cars.pt] [--res 256 512 1024] [--json PATH]

The viewer's frame is the fused Triton render of the shipped LFN into a reused RGBA buffer, then the
CUDA-GL interop copy into a GL texture (engine/texture.py) in an offscreen EGL context. Measured:

    render                 the kernel alone (CUDA events)
    interop + finish       the texture write and glFinish alone, no render (wall clock)
    finish                 an empty glFinish (wall clock)
    latency                render + write + glFinish, one frame at a time (wall clock): how long
                           until one frame is in the texture; the benchmark's lfn_frame
    throughput             FRAMES_PER_RUN frames of render + write back to back, one glFinish at
                           the end (wall clock ÷ frames): the rate a pipelined loop sustains,
                           every frame still written whole into the texture
    "… graph"              the same with the render replayed from a CUDA graph

Each variant: warm-up, then the median over REPEATS runs (throughput) or frames (the rest).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/frame_path.py` from anywhere

from bench.frame_scripts import DEVICE, run  # noqa: E402
from engine.timing import median_p90, time_frames, time_pipelined  # noqa: E402
from models.frame_graphs import FrameGraphs  # noqa: E402
from models.renderer import LFNRenderer  # noqa: E402

FRAMES_PER_RUN, REPEATS, WARMUP = 200, 7, 20


def measure_res(renderer: LFNRenderer, res: int, poses: list[torch.Tensor]) -> list[dict]:
    import moderngl

    from engine.texture import FrameTexture

    ctx = moderngl.create_standalone_context(backend="egl")
    texture = FrameTexture(ctx)
    buffer = torch.empty(res, res, 4, device=DEVICE)
    kernel = renderer.ray_backend.kernel
    flat = buffer.view(res * res, 4)
    graphs = FrameGraphs(lambda pose, n: lambda: kernel.render_rgba(pose, n, out=flat), DEVICE)
    renders = {
        "": lambda pose: renderer.render_rgba(pose, res, buffer),
        " graph": lambda pose: graphs(pose, res),
    }
    rows = []

    def add(name: str, ms: list[float]) -> None:
        median, p90 = median_p90(ms)
        rows.append({"variant": name, "res": res, "median_ms": median, "p90_ms": p90,
                     "fps": 1000.0 / median, "texture_path": texture.texture_path})
        print(rows[-1], flush=True)

    def per_frame(frame: Callable[[torch.Tensor], object], wall: bool) -> list[float]:
        for k in range(WARMUP):
            frame(poses[k % len(poses)])
        torch.cuda.synchronize()
        return time_frames(frame, poses, DEVICE, wall_clock=wall)

    def upload_and_finish() -> None:
        texture.upload(buffer)
        ctx.finish()

    add("finish", per_frame(lambda pose: ctx.finish(), wall=True))
    add("interop + finish", per_frame(lambda pose: upload_and_finish(), wall=True))
    for suffix, render in renders.items():
        add(f"render{suffix}", per_frame(render, wall=False))
        add(f"latency{suffix}", per_frame(lambda pose, r=render: (r(pose), upload_and_finish()), wall=True))

        def step(pose: torch.Tensor, r=render) -> None:
            r(pose)
            texture.upload(buffer)

        path = [poses[k % len(poses)] for k in range(FRAMES_PER_RUN)]
        time_pipelined(step, path[:WARMUP], DEVICE, ctx.finish, passes=1)
        add(f"throughput{suffix}", time_pipelined(step, path, DEVICE, ctx.finish, passes=REPEATS))
    texture.release()
    ctx.release()
    return rows


if __name__ == "__main__":
    sys.exit(run(__doc__, lambda renderer: functools.partial(measure_res, renderer)))
