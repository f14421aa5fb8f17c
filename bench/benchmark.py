"""`main.py --benchmark`: the benchmark run (engine/benchmark.py) as a table on stdout, and the
optional --json and --plot files."""

from __future__ import annotations

import json

from engine.benchmark import benchmark, load_volumetric
from engine.benchmark_methods import available_backends
from engine.benchmark_report import format_table, plot
from engine.config import BenchmarkConfig
from models.checkpoint import Checkpoint


def run_benchmark(config: BenchmarkConfig, ckpt: Checkpoint) -> int:
    """The CLI's --benchmark: table on stdout, optional --json and --plot files."""
    source = config.volumetric
    try:
        volumetric = load_volumetric(source.path)
    except ValueError as error:
        raise ValueError(f"--volumetric {error}") from None
    if volumetric is None:
        if source.named_by_user:
            raise FileNotFoundError(f"--volumetric {source.path}: no such file")
        print(f"note: no volumetric checkpoint at {source.path}; benchmarking the LFN alone (no speedup)")
    render = config.render
    available = available_backends(render.device, render.precision)
    if config.backends is not None and (missing := [b for b in config.backends if b not in available]):
        raise ValueError(f"--backends {' '.join(missing)}: not available with {render.device} and "
                         f"{render.precision} here (available: {' '.join(available)})")
    wanted = available if config.backends is None else config.backends
    backends = [render.backend] + [b for b in dict.fromkeys(wanted) if b != render.backend]
    result = benchmark(ckpt, volumetric, render.device, render.precision, config.resolutions,
                       config.frames, config.instance, backends,
                       progress=lambda line: print(line, flush=True))
    print()
    print(format_table(result))
    if config.json is not None:
        config.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {config.json}")
    if config.plot is not None:
        plot(result, config.plot)
        print(f"wrote {config.plot}")
    return 0
