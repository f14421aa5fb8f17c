"""CPU frames on a render thread under each of the viewer's malloc settings, in one run.

    python bench/thread_frames.py [--ckpt checkpoints/cars.pt] [--res 256] [--precision bf16 fp32]
        [--frames 9] [--top-pad-mib 0.125 8] [--json results/thread_frames_cpu.json]

The viewer and `--web` render on a thread of their own after engine/memory.py has fixed glibc's
malloc thresholds for the process, so what a frame's slices free at the top of that thread's arena
goes back to the OS, or not, between slices. Each setting runs in a fresh process (the thresholds
are the process's): glibc's own; then the thresholds as fix_malloc_thresholds() sets them, with
each --top-pad-mib kept at a trimmed arena's top (0.125: glibc's default pad, the viewer until
2026-12-06; the default list ends with the shipped pad). In each, a thread renders
the checkpoint's first car (2 warm-up frames, then --frames timed ones at azimuths a degree apart,
wall clock), per precision; reported: the median and the resident MB after the frames, their
renderer dropped and the heap trimmed (what stays at rest).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python bench/thread_frames.py` from anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from engine.cli import OneLineParser, run_entry_point, write_json  # noqa: E402
from engine.memory import MB, TOP_PAD_BYTES  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402

GLIBC_TOP_PAD_MIB = 0.125

# One setting's measurement, in a fresh interpreter: argv = setting ("glibc" or the top pad in
# bytes with the thresholds fixed), ckpt, res, frames, precisions...
CHILD = """
import ctypes, json, statistics, sys, threading, time
import torch
from engine.memory import M_TOP_PAD, MB, fix_malloc_thresholds, rss_bytes, trim_heap
from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
from models.resolution import Resolution
setting, ckpt, precisions = sys.argv[1], sys.argv[2], sys.argv[5:]
res, frames = int(sys.argv[3]), int(sys.argv[4])
if setting != "glibc":
    assert fix_malloc_thresholds()
    assert ctypes.CDLL("libc.so.6").mallopt(M_TOP_PAD, int(setting)) == 1
model = load_checkpoint(ckpt).model
rows = []
def render(precision):
    renderer = make_renderer(model, torch.device("cpu"), precision)
    size = Resolution.square(res)
    for _ in range(2):
        renderer.render(orbit_pose(30.0, 20.0, 3.0), size)
    times = []
    for i in range(frames):
        began = time.perf_counter()
        renderer.render(orbit_pose(31.0 + i, 20.0, 3.0), size)
        times.append(1e3 * (time.perf_counter() - began))
    del renderer
    trim_heap()
    rows.append({"setting": setting if setting == "glibc" else f"fixed, top pad {int(setting) / MB:g} MiB",
                 "precision": precision, "ms_median": statistics.median(times),
                 "ms_all": times, "rss_mb_after": rss_bytes() / MB})
for precision in precisions:
    thread = threading.Thread(target=render, args=(precision,))
    thread.start()
    thread.join()
print(json.dumps(rows))
"""


def measure(setting: str, ckpt: Path, res: int, frames: int, precisions: list[str]) -> list[dict]:
    """Rows of one setting: "glibc", or a top pad in bytes with the thresholds fixed."""
    done = subprocess.run([sys.executable, "-c", CHILD, setting, str(ckpt), str(res), str(frames),
                           *precisions], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(f"{setting}: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(ckpt: Path, res: int, frames: int, precisions: list[str], pads_mib: list[float]) -> dict:
    load_checkpoint(ckpt)  # a bad --ckpt is one plain error here, not a child's traceback
    ckpt = ckpt.resolve()  # the children run in the repository's root
    settings = ["glibc"] + [str(round(pad * MB)) for pad in pads_mib]
    rows = [row for setting in settings for row in measure(setting, ckpt, res, frames, precisions)]
    cpu = platform.processor() or platform.machine()
    return {"device": f"cpu ({cpu}, {torch.get_num_threads()} threads)",
            "torch": torch.__version__, "checkpoint": str(ckpt), "res": res, "frames": frames,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}


def report(result: dict, json_path: Path | None) -> None:
    print(f"{result['device']}, torch {result['torch']}, {result['res']}², median of {result['frames']} "
          "frames on a thread")
    for row in result["rows"]:
        print(f"  {row['setting']:<26} {row['precision']:<5} {row['ms_median']:8.1f} ms   "
              f"{row['rss_mb_after']:6.0f} MB resident after")
    if json_path:
        write_json(json_path, result)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                   help="LFN checkpoint; its first car is rendered "
                        "(default: the repository's checkpoints/cars.pt)")
    p.add_argument("--res", type=int, default=256, help="square frame size in pixels (default 256)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["bf16", "fp32"],
                   help="the precisions rendered in each setting, a row each (default bf16 fp32)")
    p.add_argument("--frames", type=int, default=9,
                   help="timed frames per precision, after 2 warm-up frames (default 9)")
    p.add_argument("--top-pad-mib", type=float, nargs="+", default=[GLIBC_TOP_PAD_MIB, TOP_PAD_BYTES / MB],
                   help="top pads to time with the thresholds fixed, MiB")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    return run_entry_point(
        lambda: report(run(args.ckpt, args.res, args.frames, args.precision, args.top_pad_mib),
                       args.json),
        args.debug)


if __name__ == "__main__":
    sys.exit(main())
