"""What the accelerated-volumetric scripts (occupancy_march.py, march_phases.py) share: the command
line that names the volumetric checkpoint, its instance, the device, the precision, the frame sizes
and the JSON to write, and how they write it."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from engine.cli import OneLineParser, resolution_argument, write_json
from models.renderer import PRECISIONS
from models.resolution import Resolution


def volumetric_parser(description: str, default_res: list[Resolution]) -> OneLineParser:
    """A parser with --volumetric, --instance, --device, --precision, --res and --json; a script adds
    its own."""
    parser = OneLineParser(description=description)
    parser.add_argument("--volumetric", type=Path, default=Path("checkpoints/cars_volumetric.pt"),
                        help="volumetric checkpoint (default checkpoints/cars_volumetric.pt)")
    parser.add_argument("--instance", type=int, default=0,
                        help="which car's latent code to render; negative counts from the end (default 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="where it renders (default: cuda when available, else cpu)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), default=None,
                        help="default: fp16 on CUDA, fp32 on a CPU")
    parser.add_argument("--res", type=resolution_argument, nargs="+", metavar="N|WxH", default=default_res,
                        help="frame sizes, each N for N x N or WxH "
                             f"(default {' '.join(map(str, default_res))})")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    return parser


def parse_volumetric_args(parser: OneLineParser) -> argparse.Namespace:
    """The parsed command line, the precision filled in from the device when not given."""
    args = parser.parse_args()
    args.precision = args.precision or ("fp16" if args.device.startswith("cuda") else "fp32")
    return args


def write_rows(path: Path | None, env: dict, rows: list[dict]) -> None:
    """The run's environment and rows as JSON at `path`, when one was given."""
    if path:
        write_json(path, {"env": env, "rows": rows})
        print(f"wrote {path}")
