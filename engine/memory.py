"""Peak memory a render adds: the CUDA allocator's peak on a GPU, resident-set growth on the CPU.

On the CPU a background thread samples RSS from /proc/self/statm (Linux) about every millisecond,
plus once at the end, since a frame may be shorter than a sampling interval.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
from collections.abc import Callable

import torch

from engine.timing import synchronize

SAMPLE_INTERVAL_S = 0.001
MB = 1024.0 * 1024.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def trim_heap() -> None:
    """Hand freed heap pages back to the OS, so growth counts the pages this render touches
    rather than hiding them in what earlier renders left cached (glibc only; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def then_trim(work: Callable[..., object]) -> Callable[..., None]:
    """`work`, then trim_heap: a background job's working memory, freed as its call returns (its
    frames, renderers, encoder), would otherwise stay resident until some later trim, often none:
    the render thread trims only after frames it renders."""
    def run(*args) -> None:
        work(*args)
        trim_heap()
    return run


def freeze_startup_heap() -> None:
    """Collect garbage, then exempt every object alive now from later cyclic collections (gc.freeze).

    A full collection scans every tracked object while holding the GIL, on whichever thread's
    allocation triggered it, and every other thread waits for it: with the viewer's startup heap
    (~220 k objects: torch, the GUI bindings, the checkpoint) and a backend build's (torch.export
    and Inductor add ~180 k), each took 100-250 ms, the UI thread's slowest frames during backend
    builds (RELIABILITY.md). What is alive once a long-running app has started stays alive, so
    excluding it from the scans frees nothing less; collecting first keeps garbage out of the
    frozen set."""
    gc.collect()
    gc.freeze()


class PeakMemory:
    """`with PeakMemory(device) as peak: render…` then `peak.mb`: the most memory above the start."""

    def __init__(self, device: torch.device):
        self.device = device
        self.mb = 0.0
        self._base = self._peak = 0
        self._stop, self._ready = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
            self._thread.start()
            self._ready.wait()  # the sampler's own stack and state belong to the baseline
            trim_heap()
            self._base = rss_bytes()
        return self

    def _sample(self) -> None:
        self._ready.set()
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self._peak = max(self._peak, rss_bytes())

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, rss_bytes())
        self.mb = max(0, peak - self._base) / MB
