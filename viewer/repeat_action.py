"""One viewer action repeated in-process, with resident memory after each repetition: what a chaos
run's growth is made of, one kind of action at a time. It lives in viewer/ because it drives the
viewer's own panel objects, which bench/ may not import (tests/test_layering.py).

    python -m viewer.repeat_action ACTION [--times N] [--ckpt checkpoints/cars.pt] [--json PATH]

ACTION is one of ACTIONS: the panel's state objects and the render thread doing what a click does,
without a window (the UI thread's GL side, where an action has one, in an offscreen EGL context):

    switch       the render thread switches through every backend available here (one repetition:
                 each of them once, fp32, then back to torchscript), rendering a frame after each
    export       "Export video": a 12-frame 64² MP4 of a two-keyframe path (its own thread, renderer
                 and EGL context), waited for; the folder must hold the video alone afterwards
    benchmark    "Run benchmark" (its own thread, renderers and EGL context), the LFN methods alone
                 unless --volumetric names the baseline's checkpoint
    reconstruct  "Reconstruct" on a photo of the checkpoint's instance 0 (with the encoder beside the
                 checkpoint, as the viewer finds it), 20 steps, then closed
    epi          an EPI of another scanline and shift on the render thread, uploaded
    resolution   a frame at the next of the panel's resolutions (32..1024 rows), uploaded

Memory is the resident set after gc.collect and malloc_trim (engine/memory.py), so freed heap
pages do not count. The summary is the least-squares slope (MB per repetition) after the first
quarter of the repetitions, where first-use costs (imports, tracing, arenas) have settled.
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from engine.cli import OneLineParser, run_entry_point, write_json
from engine.display_mode import DisplayMode
from engine.frame import EpiRequest, FrameRenderer, FrameRequest
from engine.latents import InstanceLatent
from engine.memory import MB, rss_bytes, trim_heap
from models.cameras import Orbit
from models.checkpoint import Checkpoint, load_checkpoint
from models.renderer import BACKENDS, backend_unavailable, make_renderer
from models.resolution import Resolution

ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 600.0  # no single repetition takes longer, or something hangs
Action = Callable[[], None]


@dataclass(frozen=True)
class Setup:
    """What an action is set up with."""

    ckpt: Checkpoint
    ckpt_path: Path
    folder: Path  # a temporary folder, removed at the end
    volumetric: Path | None  # the benchmark's baseline checkpoint, if any


def wait_until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not finish within {WAIT_S:.0f} s")
        time.sleep(0.01)


def resident_mb() -> float:
    gc.collect()
    trim_heap()
    return rss_bytes() / MB


class RenderThread:
    """A RenderWorker over the checkpoint's LFN, as the window runs it, and its results taken."""

    def __init__(self, ckpt: Checkpoint):
        from viewer.fitted_latents import FittedLatentBank
        from viewer.worker import RenderWorker

        renderer = make_renderer(ckpt.model, "cpu", "fp32", "torchscript")
        bank = FittedLatentBank.of_checkpoint(ckpt)
        self.worker = RenderWorker(FrameRenderer(renderer, bank))

    def result(self, request: FrameRequest | EpiRequest):
        self.worker.submit(request)
        wait_until(lambda: self.worker.idle, "the render thread")
        done = self.worker.take(type(request))
        if isinstance(done, BaseException):
            raise done
        return done


def switch_action(setup: Setup) -> tuple[Action, Action]:
    from viewer.backend_switch import BackendSwitch

    thread = RenderThread(setup.ckpt)
    switch = BackendSwitch(thread.worker)
    device = thread.worker.frames.renderer.device
    backends = [b for b in BACKENDS if b != "torchscript" and backend_unavailable(b, device, "fp32") is None]
    request = FrameRequest(Orbit(), 64, DisplayMode.RGB, InstanceLatent(0))

    def repeat() -> None:
        for backend in [*backends, "torchscript"]:
            switch.start(backend, "fp32")
            wait_until(lambda: thread.worker.idle and switch.status().switching is None, "a switch")
            if (error := switch.status().error) is not None:
                raise RuntimeError(error)
            thread.result(request)

    return repeat, thread.worker.close


def export_action(setup: Setup) -> tuple[Action, Action]:
    from viewer.path_recording import PathRecording

    folder = setup.folder
    recording = PathRecording(setup.ckpt)
    recording.add(Orbit(azimuth=0.0), InstanceLatent(0))
    recording.add(Orbit(azimuth=90.0), InstanceLatent(1))
    recording.frames = 12
    out = folder / "path.mp4"

    def repeat() -> None:
        recording.start_export(out, Resolution.square(64), torch.device("cpu"), "fp32", "torchscript")
        wait_until(lambda: not recording.exporting, "the export")
        status = recording.export.status()
        if status.failed:
            raise RuntimeError(status.outcome)
        if (left := sorted(p.name for p in folder.iterdir())) != [out.name]:
            raise RuntimeError(f"the export left {left} in its folder")

    return repeat, recording.close


def benchmark_action(setup: Setup) -> tuple[Action, Action]:
    from viewer.benchmark_panel import BenchmarkPanel

    baseline = setup.volumetric or setup.folder / "none.pt"  # no file: the LFN methods alone
    panel = BenchmarkPanel(setup.ckpt, baseline, torch.device("cpu"))

    def repeat() -> None:
        panel.start(0, "fp32", "torchscript")
        wait_until(lambda: not panel.running, "the benchmark")
        panel.poll()
        if panel.result is None or "failed" in panel.status:
            raise RuntimeError(panel.status)
        panel.result = None

    return repeat, panel.close


def reconstruct_action(setup: Setup) -> tuple[Action, Action]:
    from viewer.fitted_latents import FittedLatentBank
    from viewer.reconstruction import Reconstruction, viewer_encoder
    from viewer.state import ViewerState

    ckpt = setup.ckpt
    pose = Orbit(azimuth=40.0, elevation=25.0)
    renderer = make_renderer(ckpt.model)
    renderer.set_latent(ckpt.latents[0])
    photo = setup.folder / "car.png"
    Image.fromarray((renderer.render(pose.cam2world(), 64) * 255).byte().numpy()).save(photo)
    state = ViewerState(num_instances=len(ckpt.instance_names))
    bank = FittedLatentBank.of_checkpoint(ckpt)
    encoder, note = viewer_encoder(None, setup.ckpt_path, ckpt.model)  # the viewer's: the one beside it
    reconstruction = Reconstruction(ckpt, setup.ckpt_path, bank, encoder, note, steps=20)

    def repeat() -> None:
        reconstruction.start(photo, pose, state)
        wait_until(lambda: not reconstruction.running and reconstruction.session.start is not None,
                   "the reconstruction")
        reconstruction.update(state, time.monotonic())
        if reconstruction.session.error:
            raise RuntimeError(reconstruction.session.error)
        reconstruction.close()

    return repeat, reconstruction.close


def uploads(thread: RenderThread,
            requests: Callable[[int], FrameRequest | EpiRequest]) -> tuple[Action, Action]:
    """Each repetition: the next request's result rendered, then uploaded as the UI thread does."""
    from engine.egl_context import offscreen_context, release_context
    from engine.texture import FrameTexture

    ctx = offscreen_context()
    texture = FrameTexture(ctx)
    count = 0

    def repeat() -> None:
        nonlocal count
        done = thread.result(requests(count))
        texture.upload(done.epi.image if isinstance(done.request, EpiRequest) else done.image)
        count += 1

    def close() -> None:
        thread.worker.close()
        texture.release()
        release_context(ctx)

    return repeat, close


def epi_action(setup: Setup) -> tuple[Action, Action]:
    thread = RenderThread(setup.ckpt)
    return uploads(thread, lambda k: EpiRequest(Orbit(), Resolution.square(64), InstanceLatent(k % 3),
                                                scanline=(k % 17) / 17, shift=0.05 + 0.02 * (k % 11)))


def resolution_action(setup: Setup) -> tuple[Action, Action]:
    from viewer.panel import RES_CHOICES

    thread = RenderThread(setup.ckpt)
    return uploads(thread, lambda k: FrameRequest(Orbit(azimuth=k), RES_CHOICES[k % len(RES_CHOICES)],
                                                  DisplayMode.RGB, InstanceLatent(0)))


# Each sets up once and returns (one repetition, what ends it).
ACTIONS = {"switch": switch_action, "export": export_action, "benchmark": benchmark_action,
           "reconstruct": reconstruct_action, "epi": epi_action, "resolution": resolution_action}


def slope_mb(readings: list[float]) -> float:
    """MB per repetition: the least-squares slope after the first quarter of the repetitions."""
    settled = readings[len(readings) // 4:]
    if len(settled) < 2:
        return 0.0
    return statistics.linear_regression(range(len(settled)), settled).slope


def repeat_action(action: str, ckpt_path: Path, times: int, volumetric: Path | None = None,
                  progress: Callable[[str], None] = print) -> dict:
    """`action` repeated `times` times; resident MB after each, and the settled slope."""
    ckpt = load_checkpoint(ckpt_path)
    with tempfile.TemporaryDirectory(prefix="lfn-repeat-") as folder:
        repeat, close = ACTIONS[action](Setup(ckpt, ckpt_path, Path(folder), volumetric))
        readings, seconds = [], []
        try:
            before = resident_mb()
            for k in range(times):
                started = time.perf_counter()
                repeat()
                seconds.append(time.perf_counter() - started)
                readings.append(resident_mb())
                progress(f"{action} {k + 1:3d}: {readings[-1]:7.1f} MB ({readings[-1] - before:+.1f}), "
                         f"{seconds[-1]:.2f} s")
        finally:
            close()
    return {"action": action, "times": times, "rss_mb_before": before, "rss_mb": readings,
            "seconds": seconds, "mb_per_repetition": slope_mb(readings)}


def run(action: str, ckpt: Path, times: int, volumetric: Path | None, json: Path | None) -> None:
    result = repeat_action(action, ckpt, times, volumetric)
    print(f"{action}: {result['mb_per_repetition']:+.2f} MB per repetition after the first {times // 4}")
    if json is not None:
        write_json(json, result)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m viewer.repeat_action", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("--times", type=int, default=20, help="repetitions (at least 2)")
    parser.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "cars.pt")
    parser.add_argument("--volumetric", type=Path, help="the benchmark's baseline checkpoint")
    parser.add_argument("--json", type=Path, help="write every reading as JSON")
    args = parser.parse_args(argv)
    if args.times < 2:
        parser.error("--times must be at least 2")
    return run_entry_point(lambda: run(args.action, args.ckpt, args.times, args.volumetric, args.json),
                           args.debug)


if __name__ == "__main__":
    sys.exit(main())
