"""Frames replayed from CUDA graphs: captured once per resolution, then one launch per frame.

A layer-by-layer frame is a dozen or more kernel launches (ray generation, Plücker, every layer of
the MLP); replayed from a CUDA graph they cost no CPU launch gaps (H100, TorchScript fp16, 512²:
2.35 → 1.93 ms per frame). A graph replays fixed addresses, so a frame captured here reads its
camera from one static device tensor (`FrameGraphs.pose`), and whatever else it reads (the folded
weights of LFNRenderer.set_latent) must be updated in place, never rebound.

    graphs = FrameGraphs(make_step, device)   # make_step(pose, res) → step() → frame tensor
    frame = graphs(cam2world, res)            # the graph's static output: copy it before the next call
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import torch

from models.resolution import Resolution

T = TypeVar("T")
Size = Resolution | int  # a frame's size as make_step takes it: a graph is kept per size
# A traced function compiles its graph on its first run and Triton autotunes on its first launch;
# neither may happen inside a capture.
WARMUP_RUNS = 3
# One capture at a time in this process: torch.cuda.graph synchronizes the device before capturing
# (and a Triton warm-up's autotuning does too), which CUDA refuses while another stream captures.
_CAPTURE_LOCK = threading.Lock()


def on_side_stream(work: Callable[[], T]) -> T:
    """`work` run off the current stream, which then waits for it: where a CUDA graph's warm-up
    runs must run, as torch.cuda.graph captures on a stream of its own."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = work()
    torch.cuda.current_stream().wait_stream(side)
    return out


def capture(step: Callable[[], T], warmup_runs: int = WARMUP_RUNS) -> tuple[torch.cuda.CUDAGraph, T]:
    """A CUDA graph of `step` and its static output (rewritten by each replay), after `warmup_runs`
    runs of it (0 where the caller has run it already, as a fit's steps, which must not repeat).

    Other threads may go on using the device meanwhile, but not synchronize all of it (a device-wide
    synchronize while a stream captures is an error on both sides): synchronize a stream instead.
    """
    with _CAPTURE_LOCK:
        if warmup_runs:
            on_side_stream(lambda: [step() for _ in range(warmup_runs)])
        graph = torch.cuda.CUDAGraph()
        # thread_local: the viewer's UI thread keeps making CUDA calls (the texture interop) while
        # the render thread captures; the default "global" mode would make those calls fail.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = step()
    return graph, out


class FrameGraphs:
    """CUDA graphs of one frame function, one per resolution, all reading the camera from `pose`.

    `make_step(pose, res)` returns the frame function at `res`: it may allocate its constants (the
    pixel grid, intrinsics) on the device, but the step itself must read only device tensors whose
    addresses stay fixed, the camera from `pose` ((3, 4) float32, cam2world without its last row).
    Each resolution's graph keeps its own memory pool until clear().
    """

    def __init__(self, make_step: Callable[[torch.Tensor, Size], Callable[[], T]], device: torch.device):
        self.pose = torch.zeros(3, 4, device=device)
        self._make_step = make_step
        self._graphs: dict[Size, tuple[torch.cuda.CUDAGraph, T, Callable[[], T]]] = {}

    def __call__(self, cam2world: torch.Tensor, res: Size) -> T:
        """The frame for `cam2world` ((3, 4) or (4, 4)) at `res`; the first call at a resolution
        captures its graph. The result is the graph's static output, overwritten by the next
        replay at `res`: copy it before handing it on."""
        self.pose.copy_(cam2world[:3, :4])
        if res not in self._graphs:
            step = self._make_step(self.pose, res)
            # The step is kept with its graph: the constants its closure holds (intrinsics, pixel
            # grids) are read by every replay, and once freed their memory would be handed out again.
            self._graphs[res] = (*capture(step), step)
        graph, out, _ = self._graphs[res]
        graph.replay()
        return out

    def __len__(self) -> int:
        return len(self._graphs)

    def clear(self) -> None:
        """Drop every graph and its memory pool; the next call at each resolution captures anew."""
        self._graphs.clear()
