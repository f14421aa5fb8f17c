"""`main.py --benchmark`: the benchmark run (engine/benchmark.py) as a table on stdout, and the
optional --json and --plot files."""

from __future__ import annotations

import argparse
import json

from engine.benchmark import benchmark, load_volumetric
from engine.benchmark_methods import available_backends
from engine.benchmark_report import format_table, plot
from models.checkpoint import Checkpoint


def run_benchmark(args: argparse.Namespace, ckpt: Checkpoint) -> int:
    """The CLI's --benchmark: table on stdout, optional --json and --plot files."""
    try:
        volumetric = load_volumetric(args.volumetric)
    except ValueError as error:
        raise ValueError(f"--volumetric {error}") from None
    if volumetric is None:
        if args.volumetric_explicit:
            raise FileNotFoundError(f"--volumetric {args.volumetric}: no such file")
        print(f"note: no volumetric checkpoint at {args.volumetric}; benchmarking the LFN alone (no speedup)")
    device = args.device_obj
    backends = [args.backend] + [b for b in available_backends(device, args.precision) if b != args.backend]
    result = benchmark(ckpt, volumetric, device, args.precision, args.res, args.frames, args.instance,
                       backends, progress=lambda line: print(line, flush=True))
    print()
    print(format_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
