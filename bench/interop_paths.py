"""Five ways to get a rendered frame into a GL texture on a GPU, timed in one process.

    python bench/interop_paths.py [--ckpt checkpoints/cars.pt] [--res 256 512 1024] [--json PATH]

    texture     the viewer's path (engine/texture.py): the fused kernel renders into a tensor, CUDA
                copies it into the texture's registered image, GL is finished
    buffer      the kernel renders into a tensor, CUDA copies it into a registered pixel buffer,
                GL copies the buffer into the texture
    zero-copy   the kernel renders straight into the mapped pixel buffer, GL copies it into the
                texture (the viewer would need its render thread to write into GL's memory)
    shared      the viewer's path where GL has GL_EXT_memory_object_fd (engine/shared_frames.py):
                the kernel renders into CUDA memory that GL imported as a buffer, the CPU waits for
                the render, GL copies the buffer into the texture (by a compute shader, the viewer's
                way, or by a pixel-unpack upload) and the CPU waits for that

For each: one frame at a time (wall clock until GL has finished, the benchmark's lfn_frame) and
frames back to back with GL finished once per pass (lfn_frame_pipelined); for the two copying
paths also the copy alone. An experiment behind PERF.md's choice, not a viewer path.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/interop_paths.py` from anywhere

from bench.frame_scripts import DEVICE, run  # noqa: E402
from engine.shared_frames import CudaArray, SharedFramePool  # noqa: E402
from engine.texture import FrameTexture, cuda_check  # noqa: E402
from engine.timing import median_p90, time_frames, time_pipelined  # noqa: E402
from models.resolution import Resolution  # noqa: E402

WARMUP, PASSES = 20, 5


class PixelBuffer:
    """A GL pixel buffer the size of `texture`, registered with CUDA once (write-discard)."""

    def __init__(self, ctx, texture):
        from cuda.bindings import runtime as cudart

        self.cudart, self.texture = cudart, texture
        self.shape = (texture.width * texture.height, 4)
        self.buffer = ctx.buffer(reserve=texture.width * texture.height * 16)
        flags = cudart.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        (self.resource,) = cuda_check(cudart.cudaGraphicsGLRegisterBuffer(self.buffer.glo, flags),
                                      "cudaGraphicsGLRegisterBuffer")

    @contextlib.contextmanager
    def mapped(self) -> Iterator[torch.Tensor]:
        """The buffer as an (H*W, 4) float32 CUDA tensor; on exit unmapped and copied by GL into
        the texture."""
        stream = torch.cuda.current_stream(DEVICE).cuda_stream
        cuda_check(self.cudart.cudaGraphicsMapResources(1, self.resource, stream), "map")
        try:
            pointer, _ = cuda_check(self.cudart.cudaGraphicsResourceGetMappedPointer(self.resource),
                                    "cudaGraphicsResourceGetMappedPointer")
            yield torch.as_tensor(CudaArray(int(pointer), self.shape), device=DEVICE)
        finally:
            cuda_check(self.cudart.cudaGraphicsUnmapResources(1, self.resource, stream), "unmap")
        self.texture.write(self.buffer)

    def release(self) -> None:
        self.cudart.cudaGraphicsUnregisterResource(self.resource)
        self.buffer.release()


def measure_res(kernel, ctx, res: Resolution, poses: list[torch.Tensor]) -> list[dict]:
    frames = FrameTexture(ctx)
    rendered = torch.empty(res.pixels, 4, device=DEVICE)
    image = rendered.view(res.height, res.width, 4)
    target = ctx.texture((res.width, res.height), 4, dtype="f4")
    pixels = PixelBuffer(ctx, target)

    def buffer_copy() -> None:
        with pixels.mapped() as mapped:
            mapped.copy_(rendered)

    def zero_copy(pose: torch.Tensor) -> None:
        with pixels.mapped() as mapped:
            kernel.render_rgba(pose, res, out=mapped)

    pools = {copy: SharedFramePool(ctx, DEVICE, copy) for copy in ("compute", "unpack")}

    def shared_frame(pose: torch.Tensor, pool: SharedFramePool) -> None:
        shared = pool.take(res)
        kernel.render_rgba(pose, res, out=shared.tensor.view(-1, 4))
        torch.cuda.current_stream(DEVICE).synchronize()  # GL may read it only once CUDA has written it
        shared.copy_to(target)

    paths: dict[str, tuple[Callable[[torch.Tensor], None], Callable[[], object] | None]] = {
        "texture": (lambda pose: (kernel.render_rgba(pose, res, out=rendered), frames.upload(image)),
                    lambda: frames.upload(image)),
        "buffer": (lambda pose: (kernel.render_rgba(pose, res, out=rendered), buffer_copy()),
                   buffer_copy),
        "zero-copy": (zero_copy, None),
        **{f"shared, {copy}": (lambda pose, p=pool: shared_frame(pose, p),
                               lambda p=pool: p.take(res).copy_to(target))
           for copy, pool in pools.items()},
    }
    rows = []
    for name, (frame, copy_only) in paths.items():
        timings = {}
        if copy_only is not None:
            timings["copy + finish"] = time_frames(lambda pose, c=copy_only: (c(), ctx.finish()),
                                                   poses, DEVICE, wall_clock=True)
        for pose in poses[:WARMUP]:
            frame(pose)
        timings["one frame"] = time_frames(lambda pose, f=frame: (f(pose), ctx.finish()), poses,
                                           DEVICE, wall_clock=True)
        timings["pipelined"] = time_pipelined(frame, poses, DEVICE, ctx.finish, passes=PASSES)
        # what the texture holds after one more frame, against the same render into a tensor
        frame(poses[0])
        shown = frames.textures[(res.width, res.height)] if name == "texture" else target
        kernel.render_rgba(poses[0], res, out=rendered)
        exact = np.array_equal(np.frombuffer(shown.read(), np.float32), rendered.cpu().numpy().ravel())
        for what, ms in timings.items():
            median, p90 = median_p90(ms)
            rows.append({"variant": f"{name}: {what}", "res": str(res), "median_ms": median,
                         "p90_ms": p90, "texture_exact": bool(exact)})
            print(rows[-1], flush=True)
    pixels.release()
    for pool in pools.values():
        pool.release()
    target.release()
    frames.release()
    return rows


def measurer(renderer):
    """measure_res with one offscreen GL context for every resolution."""
    import moderngl

    ctx = moderngl.create_standalone_context(backend="egl")
    return lambda res, poses: measure_res(renderer.ray_backend.kernel, ctx, res, poses)


if __name__ == "__main__":
    sys.exit(run(__doc__, measurer))
