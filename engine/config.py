"""What main.py's command line asks of each mode, as typed values built once in main.py.

Kept free of heavy imports (torch, GL) so the entry point builds these before it loads a mode; the
modes take them instead of the argparse namespace, which stops at main.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.display_mode import DisplayMode  # an enum alone: cheap to import
from models.resolution import Resolution  # plain Python too

if TYPE_CHECKING:
    import torch

    from models.cameras import Orbit


@dataclass(frozen=True)
class RenderSettings:
    """Where and how the LFN's per-ray network runs."""

    device: torch.device
    precision: str  # fp32 | fp16 | bf16 (resolved, never auto)
    backend: str  # torchscript | eager | compile | triton


@dataclass(frozen=True)
class VolumetricSource:
    """The volumetric baseline's checkpoint; a missing file is an error only when the user named it
    (the default's absence is a note)."""

    path: Path
    named_by_user: bool


@dataclass(frozen=True)
class ViewerConfig:
    render: RenderSettings
    checkpoint: Path  # the LFN checkpoint's file ("save as new instance" writes beside it)
    instance: int  # resolved to 0..n-1
    res: Resolution  # the window opens at its aspect
    home: Orbit  # the camera the view starts at and resets to
    volumetric: VolumetricSource
    stats: Path | None  # JSON of UI and render timings, written on exit
    exit_after_s: float | None
    debug: bool  # a failed frame raises instead of showing its message
    encoder: Path | None = None  # --encoder; None: CKPT.encoder.pt beside the checkpoint, if any
    mode: DisplayMode = DisplayMode.RGB  # what the view shows first (--mode)
    summed_depth: bool = False  # the depth option ticked from the start (--summed-depth)


@dataclass(frozen=True)
class HeadlessConfig:
    render: RenderSettings
    instance: int
    res: Resolution  # the size of the PNG, GIF or MP4
    home: Orbit  # the PNG's camera, or the turntable's first frame
    mode: DisplayMode  # RGB, DEPTH or NORMALS
    summed_depth: bool
    out: Path  # .png (one frame), .gif or .mp4 (a camera path)
    frames: int | None  # frames of a .gif or .mp4; None: the default count
    ply: Path | None
    path: str | None = None  # "orbit" (a turntable) or a camera path's JSON file; None: orbit
    fps: float | None = None  # a .gif's or .mp4's frame rate; None: the default
    stereo_depth: bool = True  # depth, normals and points refined by the wide-baseline search


@dataclass(frozen=True)
class BenchmarkConfig:
    render: RenderSettings
    instance: int
    resolutions: tuple[Resolution, ...]  # empty: the device's default set
    frames: int | None  # timed frames per method and resolution; None: the default
    volumetric: VolumetricSource
    json: Path | None
    plot: Path | None
    backends: tuple[str, ...] | None = None  # LFN backends to time beside render.backend; None: all here


@dataclass(frozen=True)
class FitImageConfig:
    render: RenderSettings
    checkpoint: Path  # its encoder, unless named, lies beside it (models/encoder.py)
    photo: Path
    pose: Orbit | None  # the photo's camera; None: the encoder estimates it
    inference: str | None  # encoder | refine | autodecode; None: refine with an encoder, else autodecode
    steps: int | None  # refinement or auto-decoding steps; None: the mode's default
    out: Path  # the checkpoint copy with the fitted instance appended
    encoder: Path | None = None  # --encoder; None: CKPT.encoder.pt beside the checkpoint, if any
    mirror_weight: float | None = None  # the photo's mirrored rays in each step; None: the fit's default
    modulation_steps: int | None = None  # refinement past the latent; None: the mode's default


@dataclass(frozen=True)
class WebConfig:
    render: RenderSettings
    host: str  # the address the page listens on (loopback unless the user exposes it)
    port: int
    res: Resolution
    instance: int  # where a new browser starts
    home: Orbit  # the camera a new browser starts with
    checkpoint: Path  # where the checkpoint came from (a reconstruction's meta)
    volumetric: VolumetricSource  # the baseline the panel's benchmark compares with
    exit_after_s: float | None
    stats: Path | None  # JSON of the frames sent to each browser, written on exit
    encoder: Path | None = None  # --encoder; None: CKPT.encoder.pt beside the checkpoint, if any
    mode: DisplayMode = DisplayMode.RGB  # what a new browser's view shows first (--mode)
    summed_depth: bool = False  # the depth option ticked from the start (--summed-depth)
