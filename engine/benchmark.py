"""The benchmark run: every method × resolution over one orbit camera path, into a result dict.

    result = benchmark(lfn_ckpt, volumetric_ckpt_or_None, device, precision, resolutions, frames,
                       instance, backends)
    print(format_table(result)); plot(result, "fps.png")

Each (method, resolution) renders warm-up frames, then times one frame per pose of the path
(azimuth 360°/frames apart, elevation 20°, radius 3); the CPU volumetric baseline times only the
first few poses, being two orders of magnitude slower.

A caller on another thread (the viewer's panel) passes a `stop` event: the run checks it before
every build and frame, and between the chunks of a volumetric frame or occupancy grid (seconds
each on a CPU), and ends with BenchmarkCancelled once it is set, its renderers and GL context
released. Checks are Event reads between frames or chunks, never a device synchronization.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import torch

from engine.benchmark_methods import Method, available_backends, build_methods, method_name
from engine.latents import VolumetricTwins
from engine.memory import PeakMemory
from engine.timing import median_p90, synchronize, time_frames, time_pipelined, timer_name
from models.cameras import orbit_pose
from models.checkpoint import Checkpoint, load_checkpoint
from models.renderer import FrameAbandoned
from models.resolution import Resolution

ELEVATION, RADIUS = 20.0, 3.0
DEFAULTS = {  # device type → resolutions, timed frames, warm-up frames
    "cuda": ([128, 256, 512], 50, 5),
    "cpu": ([64, 128], 5, 2),
}
# ~2.5 s per 32² frame with the full-size network: keep the CPU volumetric run short. One warm-up
# frame is enough for it (nothing to trace or compile); the LFN's methods keep two (tracing, and on
# CUDA the graph capture).
CPU_VOLUMETRIC_FRAMES, CPU_VOLUMETRIC_WARMUP = 3, 1


class BenchmarkCancelled(Exception):
    """The caller set the run's stop event; the run ended before its next frame or chunk."""


@contextlib.contextmanager
def abandoned_as_cancelled():
    """A volumetric frame or a build given up for the stop event (FrameAbandoned) is the run's cancel."""
    try:
        yield
    except FrameAbandoned as abandoned:
        raise BenchmarkCancelled("benchmark cancelled") from abandoned


def stop_check(stop: threading.Event | None) -> Callable[[], None]:
    """A check to call before each frame: raises BenchmarkCancelled once `stop` is set."""
    def check() -> None:
        if stop is not None and stop.is_set():
            raise BenchmarkCancelled("benchmark cancelled")
    return check


def orbit_path(frames: int) -> list[torch.Tensor]:
    return [orbit_pose(360.0 * k / frames, ELEVATION, RADIUS) for k in range(frames)]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {torch.get_num_threads()} threads"


def volumetric_instance(lfn_ckpt: Checkpoint, volumetric_ckpt: Checkpoint, instance: int) -> int:
    """The same object in the volumetric checkpoint: by name, else by index."""
    row = VolumetricTwins(lfn_ckpt.instance_names, volumetric_ckpt.instance_names).row(instance)
    return volumetric_ckpt.resolve_instance(instance) if row is None else row


def measure(
    method: Method, res: Resolution, poses: list[torch.Tensor], warmup: int, device: torch.device,
    precision: str, check: Callable[[], None] = lambda: None,
) -> dict:
    """Time `method` at `res`; `check` runs before every frame (a cancel raises there: one Event
    read, nanoseconds against a frame's milliseconds). The row's "resolution" is the label --res
    takes ("512", "1920x1080"), beside its width and height."""
    def frame(pose: torch.Tensor) -> object:
        check()
        return method.frame(pose, res)

    warmup = warmup if method.warmup is None else method.warmup
    setup_peak = PeakMemory(device) if method.memory_in_warmup else contextlib.nullcontext()
    with setup_peak:
        for k in range(warmup):  # tracing, compilation, graph capture, chunk-size halving happen here
            frame(poses[k % len(poses)])
        synchronize(device)
    timed = poses[: method.max_frames]
    frames, timer = len(timed), timer_name(device, method.wall_clock)
    with PeakMemory(device) as peak:
        if method.finish is not None:  # ms: per frame of each pass over the path
            ms = time_pipelined(frame, timed, device, method.finish)
            frames, timer = frames * len(ms), f"{timer}, {len(ms)} pipelined passes"
        else:
            ms = time_frames(frame, timed, device, method.wall_clock)
    median, p90 = median_p90(ms)
    peak_mb = max(peak.mb, setup_peak.mb) if method.memory_in_warmup else peak.mb
    return {
        "method": method.name, "resolution": str(res), "width": res.width, "height": res.height,
        "backend": method.backend, "precision": precision,
        "ms_median": median, "ms_p90": p90, "fps": 1000.0 / median, "evals_per_ray": method.evals_per_ray,
        "peak_mem_mb": peak_mb, "frames": frames, "warmup": warmup, "timer": timer, **method.details(),
    }


def speedups(results: list[dict], reference: str, baseline: str = "volumetric") -> dict[str, float]:
    """`baseline` over `reference` median milliseconds per resolution label (both share the
    precision)."""
    ms = {(r["method"], r["resolution"]): r["ms_median"] for r in results}
    return {
        str(res): ms[(baseline, res)] / ms[(reference, res)]
        for (method, res) in ms
        if method == baseline and (reference, res) in ms
    }


def benchmark(
    lfn_ckpt: Checkpoint, volumetric_ckpt: Checkpoint | None, device: torch.device | str, precision: str,
    resolutions: Sequence[Resolution | int] | None = None, frames: int | None = None, instance: int = 0,
    backends: Sequence[str] | None = None, progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> dict:
    """Time every method at every resolution (an int N is N × N); None picks the device's defaults.

    backends: LFN backends to time, the viewer's first (lfn_depth and lfn_frame use it); by default
    every one available on the device. `progress` gets a line before each method's build and each
    measurement. Setting `stop` (from another thread) ends the run before its next frame with
    BenchmarkCancelled.
    """
    check = stop_check(stop)
    device = torch.device(device)
    default_res, default_frames, warmup = DEFAULTS["cuda" if device.type == "cuda" else "cpu"]
    resolutions = [Resolution.of(res) for res in resolutions or default_res]
    frames = frames or default_frames
    backends = list(backends or available_backends(device, precision))
    instance = lfn_ckpt.resolve_instance(instance)
    on_cpu = device.type == "cpu"
    volumetric_frames = min(frames, CPU_VOLUMETRIC_FRAMES) if on_cpu else None
    volumetric_warmup = CPU_VOLUMETRIC_WARMUP if on_cpu else None
    twin = volumetric_instance(lfn_ckpt, volumetric_ckpt, instance) if volumetric_ckpt else 0
    with abandoned_as_cancelled():  # a build or volumetric frame given up for `stop`
        found = build_methods(
            lfn_ckpt, volumetric_ckpt, device, precision, instance, twin,
            backends, volumetric_frames, volumetric_warmup, progress, None if stop is None else stop.is_set,
        )
        poses = orbit_path(frames)
        results, notes = [], list(found.notes)
        name = lfn_ckpt.instance_names[instance]
        if volumetric_ckpt is not None and volumetric_ckpt.instance_names[twin] != name:
            # The speeds compare, the pictures do not: say which car the volumetric rows drew.
            notes.append(f"the volumetric checkpoint has no {name}: its rows render "
                         f"{volumetric_ckpt.instance_names[twin]} (its instance {twin})")
        try:
            check()  # building the methods (tracing, a GL context) takes a while
            for res in resolutions:
                for method in found.methods:
                    if progress:
                        progress(f"timing {method.name} at {res.width}x{res.height} "
                                 f"({len(poses[: method.max_frames])} frames)")
                    try:
                        results.append(measure(method, res, poses, warmup, device, precision, check))
                    except (BenchmarkCancelled, FrameAbandoned):  # an optional method's too
                        raise
                    except Exception as error:  # an optional method may fail (compile, OOM): keep the rest
                        if not method.optional:
                            raise
                        notes.append(f"{method.name} at {res}: skipped ({type(error).__name__}: {error})")
        finally:
            found.close()
    if on_cpu and volumetric_ckpt is not None:
        notes.append(f"on the CPU volumetric times {volumetric_frames} frame(s) after {volumetric_warmup} "
                     f"warm-up (it is slow), the others {frames} after {warmup}")
    reference = "lfn" if "torchscript" in backends else method_name(backends[0])
    return {
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "precision": precision, "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "instance": instance, "instance_name": lfn_ckpt.instance_names[instance],
        "volumetric_instance_name": volumetric_ckpt.instance_names[twin] if volumetric_ckpt else None,
        "orbit": {"elevation": ELEVATION, "radius": RADIUS, "azimuth_step": 360.0 / frames},
        "frames": frames, "warmup": warmup, "backends": backends,
        "results": results,
        # The headline ratio is over the default (TorchScript) LFN when it ran; every backend's
        # ratio is listed too.
        "speedup_reference": reference,
        "speedup": speedups(results, reference),
        "speedup_by_method": {method_name(b): speedups(results, method_name(b)) for b in backends},
        # The headline LFN against every volumetric variant that ran: dense is the paper's
        # comparison, accelerated the one interactive renderers would make.
        "speedup_by_baseline": {
            baseline: speedups(results, reference, baseline)
            for baseline in dict.fromkeys(
                r["method"] for r in results if r["method"].startswith("volumetric"))
        },
        "notes": notes,
    }


def load_volumetric(path: Path) -> Checkpoint | None:
    """The baseline checkpoint at `path`, or None where there is no file (the LFN alone is timed)."""
    if not path.exists():
        return None
    ckpt = load_checkpoint(path)
    if ckpt.model.kind != "volumetric":
        raise ValueError(f"{path}: is a {ckpt.model.kind} checkpoint, not a volumetric one")
    return ckpt
