"""One step's milliseconds between CUDA events on the current stream: work queued before the step
is not counted, and the call returns once the step's work has finished. Shared by the benchmark's
frame timer (engine/timing.py) and the marcher's trial (models/static_marcher.py)."""

from __future__ import annotations

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
