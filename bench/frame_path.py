"""Where a viewer frame's time goes: the render, the write into the GL texture, the GL finish.

    python bench/frame_path.py [--ckpt checkpoints/cars.pt] [--res 256 512 1024 1920x1080] [--json PATH]
    python bench/frame_path.py --device cpu --res 48x32      # checks the script on a CPU (no GPU numbers)

The viewer's frame, the benchmark's lfn_frame (engine/benchmark_methods.py TextureFrames): on a GPU
the fused Triton render of the shipped LFN into a shared frame (engine/shared_frames.py: CUDA memory
GL imported, copied into the texture by GL) where CUDA and GL allow, else into a reused RGBA tensor
copied by the CUDA-GL interop; on a CPU the TorchScript render and a CPU copy. An offscreen EGL
context. Each row says which path the texture write took. Measured:

    finish                 an empty glFinish (wall clock)
    upload + finish        the texture write of an already rendered frame and glFinish, no render
                           (wall clock)
    render                 the render alone, into a reused tensor (CUDA events; the wall clock on
                           a CPU)
    latency                render + write + glFinish, one frame at a time (wall clock): how long
                           until one frame is in the texture; the benchmark's lfn_frame
    render + empty GL      (GPU) the render into a reused tensor, then the smallest GL work there
                           is (an empty compute dispatch) and glFinish (wall clock): what handing
                           the GPU from CUDA's context to GL's costs a frame, whatever GL then does
    throughput             FRAMES_PER_RUN frames of render + write back to back, one glFinish at
                           the end (wall clock ÷ frames): the rate a pipelined loop sustains,
                           every frame still written whole into the texture

Each variant: warm-up, then the median over REPEATS runs (throughput) or frames (the rest).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/frame_path.py` from anywhere

from bench.frame_scripts import run  # noqa: E402
from engine.benchmark_methods import TextureFrames  # noqa: E402
from engine.timing import median_p90, synchronize, time_frames, time_pipelined  # noqa: E402
from models.renderer import LFNRenderer  # noqa: E402
from models.resolution import Resolution  # noqa: E402

FRAMES_PER_RUN, REPEATS, WARMUP = 200, 7, 20
EMPTY_COMPUTE_SHADER = "#version 430\nlayout(local_size_x = 1) in;\nvoid main() {}\n"


def measure_res(renderer: LFNRenderer, res: Resolution, poses: list[torch.Tensor]) -> list[dict]:
    import moderngl

    from engine.shared_frames import shared_frame_pool

    device = renderer.device
    ctx = moderngl.create_standalone_context(backend="egl")
    pool = shared_frame_pool(ctx, device)
    frames = TextureFrames(renderer, ctx, pool)
    rendered = torch.empty(res.height, res.width, 4, device=device)
    rows = []

    def add(name: str, ms: list[float]) -> None:
        median, p90 = median_p90(ms)
        rows.append({"variant": name, "res": str(res), "width": res.width, "height": res.height,
                     "median_ms": median, "p90_ms": p90, "fps": 1000.0 / median, **frames.details()})
        print(rows[-1], flush=True)

    def per_frame(frame: Callable[[torch.Tensor], object], wall: bool) -> list[float]:
        for k in range(WARMUP):
            frame(poses[k % len(poses)])
        synchronize(device)
        return time_frames(frame, poses, device, wall_clock=wall)

    def upload_and_finish() -> None:
        frames.show(*frames.target(res))  # whatever the target holds: only the write is timed
        ctx.finish()

    def finished_frame(pose: torch.Tensor) -> None:
        frames.write(pose, res)
        ctx.finish()

    add("finish", per_frame(lambda pose: ctx.finish(), wall=True))
    add("upload + finish", per_frame(lambda pose: upload_and_finish(), wall=True))
    add("render", per_frame(lambda pose: renderer.render_rgba(pose, res, rendered), wall=False))
    add("latency", per_frame(finished_frame, wall=True))
    if device.type == "cuda":
        empty_dispatch = ctx.compute_shader(EMPTY_COMPUTE_SHADER)

        def render_then_empty_gl(pose: torch.Tensor) -> None:
            renderer.render_rgba(pose, res, rendered)
            synchronize(device)
            empty_dispatch.run(1)
            ctx.finish()

        add("render + empty GL", per_frame(render_then_empty_gl, wall=True))
        empty_dispatch.release()
    path = [poses[k % len(poses)] for k in range(FRAMES_PER_RUN)]
    write = functools.partial(frames.write, res=res)
    time_pipelined(write, path[:WARMUP], device, ctx.finish, passes=1)
    add("throughput", time_pipelined(write, path, device, ctx.finish, passes=REPEATS))
    frames.texture.release()
    if pool is not None:
        pool.release()
    ctx.release()
    return rows


if __name__ == "__main__":
    sys.exit(run(__doc__, lambda renderer: functools.partial(measure_res, renderer), runs_on_cpu=True))
