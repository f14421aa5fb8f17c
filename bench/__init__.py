"""Benchmark scripts: each measures one thing (a frame's path, a fit's step, training throughput,
memory, latency under load...) and writes its JSON under results/. The viewer's own benchmark mode
(`main.py --benchmark`) lives in engine/benchmark*.py.

What the scripts share: DEFAULT_CKPT, the checkpoint their --ckpt defaults to, found from the
repository's root, so a script run from any folder finds it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CKPT = ROOT / "checkpoints" / "cars.pt"
