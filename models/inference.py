"""One photo → a latent code and a camera: the three ways to reconstruct a new car.

    encoder      one forward pass of the CNN prior (models/encoder.py): latent and pose at once
    refine       the encoder's latent (and pose), then a few auto-decoding steps
                 (models/fitting.py); an estimated pose is refined jointly with the latent
    autodecode   auto-decoding from the mean latent (no encoder needed when the pose is given)

The pose is given (an Orbit) or, without one, estimated by the encoder. The encoder's azimuth has
a front/back twin (see models/encoder.py); `refine` renders the encoder's latent from both
candidates and keeps the one with the lower photometric loss before it starts; `encoder` alone
takes the more probable one.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from models.cameras import DEFAULT_RADIUS, Orbit, intrinsics, pixel_rays
from models.encoder import CarEncoder
from models.fitting import FitStep, fit_latent, psnr_from_mse

DEFAULT_STEPS = {"refine": 20, "autodecode": 300}
HYPOTHESIS_RAYS = 4096


class InferenceMode(enum.Enum):
    ENCODER = "encoder"
    REFINE = "refine"
    AUTODECODE = "autodecode"


class InferenceError(ValueError):
    """A mode that cannot run with what was given (no encoder, no pose)."""


@dataclass
class Inference:
    latent: torch.Tensor  # (latent_dim,)
    orbit: Orbit  # the photo's camera: given, estimated or refined
    psnr: float  # of the whole input view rendered with `latent` from `orbit`, dB
    seconds: float  # wall time of the inference itself (not of the PSNR render)
    mode: InferenceMode
    steps: int
    pose_estimated: bool


def default_mode(encoder: CarEncoder | None) -> InferenceMode:
    return InferenceMode.REFINE if encoder is not None else InferenceMode.AUTODECODE


def resolve_steps(mode: InferenceMode, steps: int | None) -> int:
    """Auto-decoding steps a mode takes: none for `encoder`, else `steps` or the mode's default."""
    return 0 if mode is InferenceMode.ENCODER else (steps or DEFAULT_STEPS[mode.value])


def check_inputs(mode: InferenceMode, encoder: CarEncoder | None, orbit: Orbit | None) -> None:
    """Raise InferenceError when the mode needs an encoder or a pose that is missing."""
    if mode is not InferenceMode.AUTODECODE and encoder is None:
        raise InferenceError(f"inference mode {mode.value!r} needs an encoder")
    if orbit is None and encoder is None:
        raise InferenceError("no pose given and no encoder to estimate it")


def render_view(model, latent: torch.Tensor, orbit: Orbit, res: int) -> torch.Tensor:
    """(res, res, 3) colors in [0, 1] of the whole view, no grad."""
    device = latent.device
    origins, dirs = pixel_rays(orbit.cam2world().to(device), intrinsics(res, res), res, res)
    with torch.no_grad():
        return model(origins.reshape(1, -1, 3), dirs.reshape(1, -1, 3), latent[None]).reshape(res, res, 3)


def photometric_mse(model, latent: torch.Tensor, orbit: Orbit, photo: torch.Tensor,
                    pixels: torch.Tensor) -> float:
    """MSE on a fixed set of pixel indices (flattened rows × cols) of the photo."""
    res = photo.shape[0]
    origins, dirs = pixel_rays(orbit.cam2world().to(latent.device), intrinsics(res, res), res, res)
    target = photo.reshape(-1, 3)[pixels].float() / 255.0
    with torch.no_grad():
        colors = model(origins.reshape(-1, 3)[pixels][None], dirs.reshape(-1, 3)[pixels][None],
                       latent[None])[0]
    return float(torch.nn.functional.mse_loss(colors, target))


def encoder_guess(encoder: CarEncoder, photo: torch.Tensor) -> tuple[torch.Tensor, list[Orbit]]:
    """The encoder's latent and its pose candidates, most probable first."""
    out = encoder.encode_photo(photo)
    azimuths, _ = out.azimuth_hypotheses()
    elevation = float(out.elevation[0])
    candidates = [Orbit(float(a), elevation, DEFAULT_RADIUS) for a in azimuths[0]]
    return out.latent[0], candidates


def pick_hypothesis(model, latent: torch.Tensor, candidates: list[Orbit], photo: torch.Tensor,
                    seed: int = 0) -> Orbit:
    """The candidate whose render of `latent` matches the photo best on a few random pixels."""
    generator = torch.Generator().manual_seed(seed)
    count = min(HYPOTHESIS_RAYS, photo.shape[0] * photo.shape[1])
    pixels = torch.randperm(photo.shape[0] * photo.shape[1], generator=generator)[:count]
    losses = [photometric_mse(model, latent, orbit, photo, pixels) for orbit in candidates]
    return candidates[min(range(len(candidates)), key=losses.__getitem__)]


def infer(
    model, photo: torch.Tensor, mode: InferenceMode, encoder: CarEncoder | None = None,
    orbit: Orbit | None = None, steps: int | None = None,
    on_step: Callable[[FitStep], None] | None = None,
) -> Inference:
    """Reconstruct one photo, (H, W, 3) uint8 on white at the network's resolution.

    `orbit` None asks the encoder for the pose; `steps` None takes the mode's default.
    Raises InferenceError from check_inputs.
    """
    check_inputs(mode, encoder, orbit)
    steps = resolve_steps(mode, steps)
    device = next(model.parameters()).device
    res = photo.shape[0]
    start = time.perf_counter()
    pose_estimated = orbit is None
    guess = None
    if mode is not InferenceMode.AUTODECODE or pose_estimated:
        guess, candidates = encoder_guess(encoder, photo)
    if pose_estimated:
        orbit = (candidates[0] if mode is InferenceMode.ENCODER
                 else pick_hypothesis(model, guess.to(device), candidates, photo.to(device)))
    init = None if mode is InferenceMode.AUTODECODE else guess
    latent = init
    if steps:
        camera = orbit if pose_estimated else orbit.cam2world()[None]
        fit = fit_latent(model, photo[None], camera, intrinsics(res, res), steps,
                         on_step=on_step, init=init)
        latent, orbit = fit.latent, fit.orbit or orbit
    latent = latent.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    rendered = render_view(model, latent, orbit, res)
    psnr = psnr_from_mse(float(((rendered - photo.to(device).float() / 255.0) ** 2).mean()))
    return Inference(latent, orbit, psnr, seconds, mode, steps, pose_estimated)
