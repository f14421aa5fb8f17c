"""Score a checkpoint on the car data set (engine/evaluation.py): novel views of training cars, and
single-image reconstruction of held-out cars (network frozen, a fresh latent fitted to one view).

    python -m tools.evaluate --ckpt checkpoints/cars.pt --data data/cars [--json out.json]
        [--write-metrics]   # also store the four headline metrics in the checkpoint's meta
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from engine.cli import OneLineParser, run_entry_point
from engine.evaluation import evaluate
from models.checkpoint import load_checkpoint, save_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--fit-steps", type=int, default=300)
    p.add_argument("--max-cars", type=int, help="score at most this many cars per split")
    p.add_argument("--max-views", type=int, help="score at most this many views per car")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--write-metrics", action="store_true",
                   help="store the four headline metrics in the checkpoint's meta")
    args = p.parse_args(argv)
    return run_entry_point(lambda: score(args), args.debug)


def score(args: argparse.Namespace) -> None:
    """The scores on stdout, in --json, and with --write-metrics in the checkpoint."""
    ckpt = load_checkpoint(args.ckpt)
    result = evaluate(ckpt, args.data, torch.device(args.device), args.fit_steps,
                      args.max_cars, args.max_views)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.write_metrics:
        keys = ("psnr_heldout_views", "ssim_heldout_views", "psnr_single_image", "ssim_single_image")
        ckpt.meta["metrics"] = {k: round(result[k], 4) for k in keys}
        save_checkpoint(ckpt.model.cpu(), ckpt.instance_names, ckpt.meta, args.ckpt)


if __name__ == "__main__":
    sys.exit(main())
