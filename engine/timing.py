"""Per-frame milliseconds: CUDA events on a GPU, synchronized perf_counter on the CPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from models.step_timing import event_timed

T = TypeVar("T")


def synchronize(device: torch.device) -> None:
    """Wait for the work issued on this thread's stream. Not the whole device: the viewer benchmarks
    on a thread beside its render thread, whose CUDA graph captures a device-wide synchronize breaks."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


@dataclass
class ProducerClock:
    """Wall seconds spent producing the items of an iterator, summed over those taken: the share of
    a consumer's loop (a video encoder pulling rendered frames) that is the producer's."""

    seconds: float = 0.0
    items: int = 0

    def timed(self, items: Iterable[T], device: torch.device) -> Iterator[T]:
        """`items`, each one's production timed up to its device's work finished."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            synchronize(device)
            self.seconds += time.perf_counter() - started
            self.items += 1
            yield item


def _event_ms(frame: Callable[[], object]) -> float:
    return event_timed(frame)[1]  # one frame at a time, as the viewer renders them


def _wall_ms(frame: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    frame()
    synchronize(device)
    return (time.perf_counter() - start) * 1000.0


def timer_name(device: torch.device, wall_clock: bool) -> str:
    return "cuda-events" if device.type == "cuda" and not wall_clock else "perf_counter"


def time_frames(
    frame: Callable[[torch.Tensor], object], poses: Sequence[torch.Tensor], device: torch.device,
    wall_clock: bool = False,
) -> list[float]:
    """Milliseconds of `frame(pose)` for each pose.

    `wall_clock` forces perf_counter on a GPU too, for frames with work outside CUDA's streams (GL).
    """
    if timer_name(device, wall_clock) == "cuda-events":
        return [_event_ms(lambda p=pose: frame(p)) for pose in poses]
    return [_wall_ms(lambda p=pose: frame(p), device) for pose in poses]


def time_pipelined(
    frame: Callable[[torch.Tensor], object], poses: Sequence[torch.Tensor], device: torch.device,
    finish: Callable[[], None], passes: int = 5,
) -> list[float]:
    """Milliseconds per frame of each of `passes` runs over `poses`, the frames issued back to back
    and `finish` (e.g. glFinish) called once per run: the rate a pipelined frame loop sustains."""
    per_frame = []
    for _ in range(passes):
        synchronize(device)
        finish()
        start = time.perf_counter()
        for pose in poses:
            frame(pose)
        finish()
        synchronize(device)
        per_frame.append((time.perf_counter() - start) * 1000.0 / len(poses))
    return per_frame


def median_p90(ms: Sequence[float]) -> tuple[float, float]:
    return float(np.median(ms)), float(np.percentile(ms, 90))
