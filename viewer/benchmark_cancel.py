"""How long the viewer panel's "Cancel benchmark" takes to end the run: from BenchmarkPanel.cancel()
to the end of the benchmark thread (its renderers and GL context released, the heap trimmed). It
lives in viewer/ because it drives the panel itself, which bench/ may not import.

    python -m viewer.benchmark_cancel [--ckpt checkpoints/cars.pt]
        [--volumetric checkpoints/cars_volumetric.pt] [--backend torchscript] [--load N]
        [--only TEXT ...] [--json PATH]

Each moment starts a new panel run (the panel's own resolutions and frames, this process's CPU)
and cancels it a set delay after the progress line that opens a phase: a build, the LFN's frames,
the volumetric baseline's warm-up and timed frames, the occupancy grid built in the accelerated
baseline's first warm-up frame, the dense reference frame its PSNR is read from. `--load N` runs N
busy processes beside it for the whole measurement (the machine shared with other jobs); the
1-minute load average is read at each cancel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from engine.benchmark import device_name
from engine.cli import OneLineParser, run_entry_point, write_json
from models.checkpoint import Checkpoint, load_checkpoint
from viewer.benchmark_panel import BenchmarkPanel

ROOT = Path(__file__).resolve().parents[1]
PHASE_TIMEOUT_S = 600.0  # a run reaches its last phase in ~70 s on 2 idle cores


@dataclass(frozen=True)
class Moment:
    name: str
    after_line: str  # the progress line that opens the phase (a prefix)
    delay_s: float  # cancel this long after it


# In run order; the delays put the cancel inside the named work on 2 cores at rest (and under load,
# where every phase is longer).
MOMENTS = (
    Moment("first backend build", "building ", 0.0),
    Moment("LFN frames at 32²", "timing lfn", 0.01),
    Moment("volumetric frames at 32²", "timing volumetric at 32x32", 0.5),
    Moment("occupancy grid (accelerated warm-up at 32²)", "timing volumetric:accelerated at 32x32", 0.1),
    Moment("volumetric warm-up frame at 64²", "timing volumetric at 64x64", 1.0),
    Moment("volumetric timed frames at 64²", "timing volumetric at 64x64", 12.0),
    Moment("accelerated PSNR reference at 64² (dense)", "timing volumetric:accelerated at 64x64", 3.0),
    Moment("lfn_frame_pipelined at 64²", "timing lfn_frame_pipelined at 64x64", 0.02),
)


@dataclass(frozen=True)
class Cancel:
    moment: str
    cancel_at_s: float  # into the run
    during: str  # the last progress line before the cancel
    latency_s: float  # cancel() → the benchmark thread ended
    status: str  # what the panel showed after
    load_1min: float


def cancel_once(ckpt: Checkpoint, volumetric: Path, backend: str, moment: Moment) -> Cancel | None:
    """One run cancelled at `moment`; None where the run ended before reaching it."""
    panel = BenchmarkPanel(ckpt, volumetric, torch.device("cpu"))
    reached, issued, lines = threading.Event(), threading.Event(), []
    post = panel._post

    def spy(status: str, result: dict | None = None) -> None:  # on the benchmark thread
        lines.append(status)
        if status.startswith(moment.after_line) and not reached.is_set():
            reached.set()
            if moment.delay_s == 0:  # cancel at this very line: hold the run here until it is
                issued.wait(PHASE_TIMEOUT_S)  # issued (a tiny model's build is over in a blink)
        post(status, result)

    panel._post = spy
    start = time.monotonic()
    panel.start(instance=0, precision="fp32", backend=backend)
    while not reached.wait(0.05):
        if not panel.running or time.monotonic() - start > PHASE_TIMEOUT_S:
            panel.close()
            return None
    time.sleep(moment.delay_s)
    cancelled = time.monotonic()
    during = lines[-1]
    panel.cancel()
    issued.set()
    panel._thread.join()
    latency = time.monotonic() - cancelled
    panel.poll()
    return Cancel(moment.name, round(cancelled - start, 2), during, round(latency, 3), panel.status,
                  os.getloadavg()[0])


def measure(args) -> int:
    ckpt = load_checkpoint(args.ckpt)
    moments = [m for m in MOMENTS if not args.only or any(text in m.name for text in args.only)]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        rows = []
        for moment in moments:
            row = cancel_once(ckpt, args.volumetric, args.backend, moment)
            if row is None:
                print(f"{moment.name}: the run ended before it", flush=True)
                continue
            rows.append(row)
            print(f"{row.latency_s * 1000:8.0f} ms  {row.moment} ({row.during}, load {row.load_1min:.1f})",
                  flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    if not rows:
        raise RuntimeError("no run reached a moment to cancel at")
    worst = max(rows, key=lambda row: row.latency_s)
    print(f"worst: {worst.latency_s * 1000:.0f} ms, {worst.moment}")
    if args.json:
        write_json(args.json, {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "device": device_name(torch.device("cpu")), "torch": torch.__version__,
            "backend": args.backend, "busy_processes": args.load,
            "cancels": [asdict(row) for row in rows],
        })
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m viewer.benchmark_cancel", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, default=ROOT / "checkpoints" / "cars.pt")
    parser.add_argument("--volumetric", type=Path, default=ROOT / "checkpoints" / "cars_volumetric.pt")
    parser.add_argument("--backend", default="torchscript", help="the LFN backend the panel benchmarks")
    parser.add_argument("--load", type=int, default=0, help="busy processes run beside it")
    parser.add_argument("--only", nargs="+", help="only the moments whose name contains one of these")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    return run_entry_point(lambda: measure(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
