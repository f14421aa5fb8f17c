"""Score the inference modes on held-out cars per source (engine/encoder_evaluation.py).

    python -m tools.evaluate_encoder --ckpt checkpoints/cars.pt --data data/cars
        [--encoder FILE] [--cars-per-source N (default all)] [--front-back-views 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from engine.cli import OneLineParser, non_negative_float, non_negative_int, run_entry_point, write_json
from engine.encoder_evaluation import (
    InferenceEvaluationConfig,
    encoder_latency_ms,
    evaluate_inference,
)
from models.checkpoint import load_checkpoint, read_torch_file
from models.encoder import encoder_path, encoder_size_bytes, load_encoder


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    ckpt = load_checkpoint(args.ckpt)
    model = ckpt.model.to(device)
    path = args.encoder or encoder_path(args.ckpt)
    encoder = load_encoder(path, ckpt.model).to(device)
    encoder_meta = read_torch_file(path)["meta"]
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "checkpoint": str(args.ckpt), "encoder": str(path),
        "encoder_bytes": Path(path).stat().st_size,
        "encoder_parameter_bytes": encoder_size_bytes(encoder),
        "encoder_train": {k: encoder_meta.get(k) for k in ("steps", "train_seconds", "device",
                                                           "date", "train_config", "history")},
        "encoder_ms_per_image_median": encoder_latency_ms(encoder, args.res),
        **evaluate_inference(model, encoder, config_from(args)),
    }
    return result


def config_from(args: argparse.Namespace) -> InferenceEvaluationConfig:
    return InferenceEvaluationConfig(
        data=args.data, cars_per_source=args.cars_per_source, novel_views=args.novel_views,
        refine_steps=args.refine_steps, autodecode_steps=args.autodecode_steps,
        front_back_views=args.front_back_views, mirror_weight=args.mirror_weight,
        modulation_steps=args.modulation_steps)


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    defaults = InferenceEvaluationConfig
    p.add_argument("--ckpt", type=Path, required=True, help="the LFN checkpoint the encoder was trained for")
    p.add_argument("--data", type=Path, required=True, help="a data set with held-out (test) cars")
    p.add_argument("--encoder", type=Path, help="default: beside the checkpoint")
    p.add_argument("--cars-per-source", type=int,
                   help="held-out cars scored per source, spread over the ids (default: all; "
                        "0: the front/back evidence alone)")
    p.add_argument("--novel-views", type=int, default=defaults.novel_views,
                   help="held-out views scored per car")
    p.add_argument("--refine-steps", type=int, default=defaults.refine_steps,
                   help="latent steps of refine, and of the autodecode run beside it "
                        "(default %(default)s)")
    p.add_argument("--autodecode-steps", type=int, default=defaults.autodecode_steps,
                   help="the long auto-decoding baseline; 0 leaves it out")
    p.add_argument("--front-back-views", type=int, default=defaults.front_back_views,
                   help="views per held-out car (all of them) for the front/back evidence")
    p.add_argument("--res", type=int, default=128, help="photo size for the latency measurement")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="where the LFN and the encoder run (default: cuda when available)")
    p.add_argument("--json", type=Path, help="also write the result, per-car rows included, here")
    p.add_argument("--mirror-weight", type=non_negative_float, default=defaults.mirror_weight,
                   help="weight of the photo's mirrored rays in the refine and autodecode steps "
                        "(default %(default)s; 0: the observed rays alone)")
    p.add_argument("--modulation-steps", type=non_negative_int, default=defaults.modulation_steps,
                   help="after the latent steps of refine and autodecode, refine the car's FiLM "
                        "modulations this many steps (default 0: the latents alone)")
    args = p.parse_args(argv)
    return run_entry_point(lambda: report(run(args), args.json), args.debug)


def report(result: dict, json_path: Path | None) -> None:
    """The summary on stdout (per-car rows left out), everything in --json."""
    summary = {k: v for k, v in result.items() if k != "per_source"}
    summary["per_source"] = {s: {k: v for k, v in r.items() if k != "rows"}
                             for s, r in result["per_source"].items()}
    print(json.dumps(summary, indent=1))
    if json_path:
        write_json(json_path, result)


if __name__ == "__main__":
    sys.exit(main())
