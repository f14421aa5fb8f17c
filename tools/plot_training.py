"""Training curves from one or more runs' log.jsonl (tools/train.py writes them).

    python -m tools.plot_training runs/lfn/log.jsonl [more/log.jsonl ...] --out docs/curves.png
        --rays-per-step 262144 [...] [--label NAME ...] [--reference '29.1:an earlier run']

Two panels over the rays seen (step × --rays-per-step of that run): the training batches' PSNR
(a running median, the raw values are noisy) and the held-out-view PSNR that training logs
every --eval-every steps. Rays rather than steps or minutes, so runs with other batch shapes or
speeds compare on the work done.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.cli import OneLineParser, UsageError, run_entry_point

SMOOTHING = 21  # log records in the training PSNR's running median


@dataclass
class TrainingLog:
    label: str
    train: list[tuple[int, float]]  # (step, batch PSNR)
    heldout: list[tuple[int, float]]  # (step, held-out-view PSNR)


def read_log(path: Path, label: str) -> TrainingLog:
    train, heldout = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise UsageError(f"{path}: cannot read the log ({e.strerror})") from e
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UsageError(f"{path}:{number}: not a JSON line ({e.msg})") from e
        if "psnr" in record:
            train.append((record["step"], record["psnr"]))
        elif "heldout_psnr" in record:
            heldout.append((record["step"], record["heldout_psnr"]))
    if not train:
        raise UsageError(f"{path}: no training records (is it a tools.train log.jsonl?)")
    return TrainingLog(label, train, heldout)


def running_median(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [statistics.median(values[max(0, i - half):i + half + 1]) for i in range(len(values))]


def plot(logs: list[TrainingLog], rays_per_step: list[int], references: list[tuple[float, str]],
         out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for log, rays in zip(logs, rays_per_step, strict=True):
        steps, psnr = zip(*log.train, strict=True)
        left.plot([s * rays / 1e9 for s in steps], running_median(list(psnr), SMOOTHING),
                  label=log.label)
        if log.heldout:
            steps, psnr = zip(*log.heldout, strict=True)
            right.plot([s * rays / 1e9 for s in steps], psnr, marker="o", label=log.label)
    for value, text in references:
        right.axhline(value, color="gray", linestyle="--", linewidth=1)
        right.annotate(text, (0.01, value), xycoords=("axes fraction", "data"),
                       textcoords="offset points", xytext=(0, 4), fontsize=8, color="gray")
    left.set(title=f"training batches (running median of {SMOOTHING} log records)",
             xlabel="rays seen (G)", ylabel="PSNR (dB)")
    right.set(title="held-out views of training cars (logged during training)",
              xlabel="rays seen (G)", ylabel="PSNR (dB)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def parse_reference(text: str) -> tuple[float, str]:
    value, _, label = text.partition(":")
    try:
        return float(value), label
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PSNR[:label]") from None


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("logs", type=Path, nargs="+", help="log.jsonl files of tools.train runs")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    p.add_argument("--label", nargs="+", help="one name per log (default: the run's folder)")
    p.add_argument("--rays-per-step", type=int, nargs="+", required=True,
                   help="rays per training step of each run (objects per step × rays per object)")
    p.add_argument("--reference", type=parse_reference, action="append", default=[],
                   metavar="PSNR[:LABEL]", help="a dashed held-out-PSNR line, e.g. an earlier run's")
    args = p.parse_args(argv)
    labels = args.label or [log.parent.name for log in args.logs]
    for name, values in (("--label", labels), ("--rays-per-step", args.rays_per_step)):
        if len(values) != len(args.logs):
            p.error(f"argument {name}: give one per log ({len(args.logs)})")

    def work() -> None:
        logs = [read_log(path, label) for path, label in zip(args.logs, labels, strict=True)]
        plot(logs, args.rays_per_step, args.reference, args.out)
        print(f"wrote {args.out}")

    return run_entry_point(work, args.debug)


if __name__ == "__main__":
    sys.exit(main())
