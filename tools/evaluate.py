"""Score a checkpoint on the car data set (engine/evaluation.py): novel views of training cars, and
single-image reconstruction of held-out cars (network frozen, a fresh latent fitted to one view).

    python -m tools.evaluate --ckpt checkpoints/cars.pt --data data/cars [--json out.json]
        [--write-metrics]   # also store the headline metrics, overall and per source, in the meta
        [--max-cars N --max-views M]   # a quick run: the first N cars of each split, M views each
        [--any-resolution]   # e.g. a 128² checkpoint on 256² views (refused otherwise)
        [--fit-start encoder]   # single-image fits start from the encoder's code, not the mean
        [--mirror-weight 0]   # single-image fits without the photo's mirrored rays
        [--tasks heldout-views]   # one task only (or single-image); both by default

Every car of each split is scored by default. Prints the JSON (per-car rows included), then a
table per source (real cars, procedural cars, all) and, where the real cars come from several
collections, per origin (TORCS, SUMO, FlightGear, procedural). A data set with only one split gets the
other split's metrics absent, with a note. Training cars the checkpoint has no code for (a data
set with more cars than it was trained on) are noted and not loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from engine.cli import OneLineParser, non_negative_float, non_negative_int, run_entry_point, write_json
from engine.evaluation import ALL, TASK_OF_SPLIT, Evaluation, evaluate
from models.checkpoint import load_checkpoint
from models.encoder import encoder_path, find_encoder
from models.fitting import MIRROR_WEIGHT

TASK_FLAGS = {task.replace("_", "-"): task for task in TASK_OF_SPLIT.values()}  # --tasks names


def source_table(result: Evaluation) -> str:
    """Rows real / procedural / all, then one per origin where a source has several (TORCS, SUMO
    and FlightGear cars are all real); PSNR / SSIM of each task and the cars scored."""
    def cell(summary) -> str:
        return "—" if summary is None else f"{summary.psnr:.2f} dB / {summary.ssim:.3f}"

    def row(label: str, source=ALL, origin: str | None = None) -> str:
        heldout, single = (result.summary(task, source, origin) for task in TASK_OF_SPLIT.values())
        cars = " + ".join(str(s.cars if s else 0) for s in (heldout, single))
        return f"{label:<13}{cell(heldout):>26}{cell(single):>26}{cars:>19}"

    header = (f"{'source':<13}{'held-out views PSNR/SSIM':>26}{'single image PSNR/SSIM':>26}"
              f"{'cars (train+test)':>19}")
    lines = [header, "-" * len(header)]
    lines += [row(source, source) for source in [*result.sources, ALL]]
    if len(result.origins) > len(result.sources):
        lines += [row(f"  {origin}", origin=origin) for origin in result.origins]
    limits = [f"--{flag} {value}" for flag, value in
              (("max-cars", result.max_cars), ("max-views", result.max_views)) if value is not None]
    if limits:
        lines.append(f"limited run ({' '.join(limits)}): not every car or view was scored")
    return "\n".join(lines + [f"note: {note}" for note in result.notes])


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, required=True, help="the checkpoint to score (LFN or volumetric)")
    p.add_argument("--data", type=Path, required=True,
                   help="the data set folder (tools.make_dataset's --out)")
    p.add_argument("--json", type=Path, help="also write the result, per-car rows included, here")
    p.add_argument("--fit-steps", type=int, default=300,
                   help="optimizer steps of each single-image latent fit (default %(default)s)")
    p.add_argument("--max-cars", type=int, help="score at most this many cars per split")
    p.add_argument("--max-views", type=int, help="score at most this many views per car")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the model runs (default: cuda when available, else cpu)")
    p.add_argument("--write-metrics", action="store_true",
                   help="store the headline metrics, overall and per source, in the "
                        "checkpoint's meta")
    p.add_argument("--any-resolution", action="store_true",
                   help="score views of another resolution than the checkpoint was trained on "
                        "(e.g. a 128² model on 256² views; noted in the result)")
    p.add_argument("--fit-start", choices=("mean", "encoder"), default="mean",
                   help="where each single-image fit starts: the latent table's mean "
                        "(auto-decoding), or the code the checkpoint's encoder (beside it) "
                        "predicts for the input view; the pose is given either way")
    p.add_argument("--mirror-weight", type=non_negative_float, default=MIRROR_WEIGHT,
                   help="weight of the photo's rays mirrored in the car's plane of symmetry in a "
                        "single-image fit (default %(default)s; 0: the observed rays alone)")
    p.add_argument("--modulation-steps", type=non_negative_int, default=0,
                   help="after each single-image fit, refine the LFN's FiLM modulations from the "
                        "photo this many steps, past what a latent reaches (default 0: none)")
    p.add_argument("--tasks", nargs="+", choices=TASK_FLAGS, default=list(TASK_FLAGS),
                   metavar="TASK", help="what to score: heldout-views (of training cars), "
                                        "single-image (reconstruction of held-out cars); "
                                        "default: both")
    args = p.parse_args(argv)
    if args.write_metrics and len(set(args.tasks)) < len(TASK_FLAGS):
        p.error("--write-metrics stores every headline metric: not with --tasks naming one")
    if args.any_resolution and args.write_metrics:
        p.error("--write-metrics stores the checkpoint's own scores: not with --any-resolution")
    if args.fit_start == "encoder" and args.write_metrics:
        p.error("--write-metrics stores the auto-decoding scores: not with --fit-start encoder")
    if args.modulation_steps and args.write_metrics:
        p.error("--write-metrics stores the auto-decoding scores: not with --modulation-steps")
    return run_entry_point(lambda: score(args), args.debug)


def score(args: argparse.Namespace) -> None:
    """The scores on stdout, in --json, and with --write-metrics in the checkpoint."""
    ckpt = load_checkpoint(args.ckpt)
    if args.modulation_steps and ckpt.model.kind != "lfn":
        raise ValueError(f"--modulation-steps refines an LFN's FiLM modulations; {args.ckpt} holds "
                         f"a {ckpt.model.kind} model")
    encoder = None
    if args.fit_start == "encoder":
        encoder = find_encoder(args.ckpt, ckpt.model)
        if encoder is None:
            raise FileNotFoundError(f"--fit-start encoder: no encoder beside {args.ckpt} "
                                    f"({encoder_path(args.ckpt).name}; python -m tools.train_encoder)")
    result = evaluate(ckpt, args.data, torch.device(args.device), args.fit_steps,
                      max_cars=args.max_cars, max_views=args.max_views,
                      any_resolution=args.any_resolution, encoder=encoder,
                      mirror_weight=args.mirror_weight, modulation_steps=args.modulation_steps,
                      tasks={TASK_FLAGS[flag] for flag in args.tasks})
    print(json.dumps(result.to_json(), indent=1))
    print(source_table(result))
    if args.json:
        write_json(args.json, result.to_json())
    if args.write_metrics:
        ckpt.meta["metrics"] = result.meta_metrics()
        ckpt.save(args.ckpt)


if __name__ == "__main__":
    sys.exit(main())
