"""What a CPU process keeps at rest after compare frames, per precision, with a bf16 network's rows
bucketed (models/mlp.py in_row_buckets) or not, in one run.

    python bench/bf16_memory.py [--ckpt checkpoints/cars.pt] [--volumetric checkpoints/cars_volumetric.pt]
        [--sizes 64 80 ... 144] [--latents 4] [--json results/bf16_memory_cpu.json]

oneDNN, which multiplies a CPU's bf16 and fp16, keeps state for every row count it has multiplied
for the life of the process; the accelerated volumetric march brings a new count every round. Each
setting runs in a fresh process (the state is the process's), on a thread as the viewer renders,
with the viewer's malloc thresholds: the LFN's and the accelerated volumetric baseline's frames
at each of --sizes (azimuths a degree apart), then one volumetric frame of each of --latents cars.
Reported: resident MB after the renderers are built, after the frames and after the thread ends,
each after a full collection and a heap trim (what stays at rest).
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
sys.path.insert(0, str(ROOT))  # `python bench/bf16_memory.py` from anywhere

from bench import DEFAULT_CKPT  # noqa: E402
from engine.cli import OneLineParser, run_entry_point, write_json  # noqa: E402

SETTINGS = (("fp32", True), ("bf16", True), ("bf16", False))  # (precision, rows bucketed)

# One setting's measurement, in a fresh interpreter: argv = precision, bucketed (1/0), ckpt,
# volumetric ckpt, latents, sizes...
CHILD = """
import gc, json, sys, threading
import torch
import models.mlp
from engine.memory import MB, fix_malloc_thresholds, rss_bytes, trim_heap
from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.renderer import make_renderer
precision, bucketed, ckpt, volumetric = sys.argv[1], sys.argv[2] == "1", sys.argv[3], sys.argv[4]
latents, sizes = int(sys.argv[5]), [int(size) for size in sys.argv[6:]]
if not bucketed:
    models.mlp.row_bucket = lambda n: n
fix_malloc_thresholds()
lfn, field = load_checkpoint(ckpt), load_checkpoint(volumetric)
rest = {}
def at_rest(name):
    gc.collect()
    trim_heap()
    rest[name] = rss_bytes() / MB
def frames():
    renderer = make_renderer(lfn.model, torch.device("cpu"), precision)
    baseline = make_renderer(field.model, torch.device("cpu"), precision, sampling="accelerated")
    at_rest("renderers built")
    with torch.no_grad():
        for i, size in enumerate(sizes):
            renderer.render(orbit_pose(30.0 + i, 20.0, 3.0), size)
            baseline.render(orbit_pose(30.0 + i, 20.0, 3.0), size)
        for car in range(1, latents + 1):
            baseline.set_latent(field.latents[car])
            baseline.render(orbit_pose(30.0, 20.0, 3.0), sizes[0])
    at_rest("after the frames")
thread = threading.Thread(target=frames)
thread.start()
thread.join()
at_rest("thread ended")
print(json.dumps(rest))
"""


def measure(precision: str, bucketed: bool, args) -> dict:
    command = [sys.executable, "-c", CHILD, precision, "1" if bucketed else "0", str(args.ckpt),
               str(args.volumetric), str(args.latents), *map(str, args.sizes)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"the {precision} measurement failed: {said[-1]}")
    rest = json.loads(done.stdout.strip().splitlines()[-1])
    return {"precision": precision, "rows_bucketed": bucketed, "rest_mb": rest}


def main(args) -> int:
    for path in (args.ckpt, args.volumetric):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such checkpoint")
    rows = [measure(precision, bucketed, args) for precision, bucketed in SETTINGS]
    print(f"{'precision':<10} {'rows':<12} " + " ".join(f"{name:>18}" for name in rows[0]["rest_mb"]))
    for row in rows:
        print(f"{row['precision']:<10} {'bucketed' if row['rows_bucketed'] else 'as they come':<12} "
              + " ".join(f"{mb:>15.0f} MB" for mb in row["rest_mb"].values()))
    env = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "sizes": args.sizes, "latents": args.latents,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        write_json(args.json, {"env": env, "rows": rows})
    return 0


if __name__ == "__main__":
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT,
                        help="LFN checkpoint (default: the repository's checkpoints/cars.pt)")
    parser.add_argument("--volumetric", type=Path, default=ROOT / "checkpoints" / "cars_volumetric.pt",
                        help="volumetric baseline checkpoint (default checkpoints/cars_volumetric.pt)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 80, 96, 112, 128, 144],
                        help="square frame sizes in pixels, one LFN and one volumetric frame each "
                             "(default 64 80 96 112 128 144)")
    parser.add_argument("--latents", type=int, default=4,
                        help="then one volumetric frame, at the first size, of each of this many "
                             "more cars (default 4)")
    parser.add_argument("--json", type=Path, help="also write the settings and rest sizes here")
    args = parser.parse_args()
    sys.exit(run_entry_point(lambda: main(args), args.debug))
