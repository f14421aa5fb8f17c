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


# glibc's mallopt parameters (malloc.h) and what they are fixed at (RELIABILITY.md, "Run K").
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # the ceiling glibc's own moving threshold stops at
TRIM_THRESHOLD_BYTES = 1024 * 1024
# What a trimmed arena keeps at its top: a CPU frame's slice (4096 rays) frees its activations
# at the end of the slice, and without a pad the next slice page-faults them afresh (bf16 on a
# render thread, 256², this 2-core Xeon: 156 ms a frame; with 2 / 4 / 8 / 16 MiB kept 116 / 84 /
# 74 / 71 ms; bench/thread_frames.py). Each arena that served a frame keeps it at rest: the
# window's chaos run held ~80 MB more at its rests with 16 MiB, ~30 MB with 8 (RELIABILITY.md,
# run O).
TOP_PAD_BYTES = 8 * 1024 * 1024


def fix_malloc_thresholds() -> bool:
    """Fix glibc's trim threshold at 1 MiB (keeping TOP_PAD_BYTES at a trimmed top) and its mmap
    threshold at 32 MiB for the rest of the process; True where glibc took all, False off glibc
    (a no-op).

    glibc raises both as torch frees large tensors (the trim threshold to twice the largest freed
    mmapped block, up to 64 MiB), and a thread arena's free top goes back to the OS only past the
    trim threshold (malloc_trim leaves it): after a fit or a cancelled benchmark the job thread's
    arena kept 30-60 MB, steps at the chaos run's rests. At 1 MiB the top goes back as it is freed.
    The mmap threshold stays where glibc's would end, so tensors up to 32 MiB keep coming from the
    arenas, whose freed pages the next frame reuses: both at 128 KiB also took the steps away, but
    every tensor was mapped and page-faulted afresh: 1.8-2x a frame's time, 2.4x a fit step's."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
            and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
            and mallopt(M_TOP_PAD, TOP_PAD_BYTES) == 1)


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
