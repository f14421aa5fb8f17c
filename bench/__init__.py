"""Benchmark mode: LFN versus the volumetric baseline, per method and resolution (issue 8).

    benchmark.py   the run: methods × resolutions over one orbit path → a result dict; the CLI entry
    methods.py     what one "frame" is for each method (LFN backends, depth, volumetric, GL frame)
    timing.py      per-frame milliseconds: CUDA events on a GPU, synchronized perf_counter on the CPU
    memory.py      peak memory a render adds: CUDA allocator peak, or resident-set growth on the CPU
    report.py      the stdout table and the PNG chart

What the scripts share: DEFAULT_CKPT, the checkpoint their --ckpt defaults to, found from the
repository's root, so a script run from any folder finds it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CKPT = ROOT / "checkpoints" / "cars.pt"
