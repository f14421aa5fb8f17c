"""One step's milliseconds between CUDA events on the current stream: work queued before the step
is not counted, and the call returns once the step's work has finished (on a CPU, by the clock).
Shared by the benchmark's frame timer (engine/timing.py), the marcher's trial
(models/static_marcher.py) and the fit step's benchmark (bench/fit_step.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

Result = TypeVar("Result")


def event_timed(step: Callable[[], Result]) -> tuple[Result, float]:
    """`step`'s result and its milliseconds on the GPU's clock."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    result = step()
    end.record()
    end.synchronize()
    return result, start.elapsed_time(end)


def timed(device: torch.device, step: Callable[[], Result]) -> tuple[Result, float]:
    """`step`'s result and its milliseconds: on CUDA between events on the stream (work queued
    before is not counted), on a CPU by the clock."""
    if device.type == "cuda":
        return event_timed(step)
    began = time.perf_counter()
    return step(), (time.perf_counter() - began) * 1000.0
