"""One photo → a latent code and a camera: the three ways to reconstruct a new car.

    encoder      one forward pass of the CNN prior (models/encoder.py): latent and pose at once
    refine       the encoder's latent (and pose), then a few auto-decoding steps
                 (models/fitting.py); an estimated pose is refined jointly with the latent
    autodecode   auto-decoding from the mean latent (no encoder needed when the pose is given)

After its latent steps, a mode refines the car past it: its FiLM modulations from the same photo
(models/modulation_fit.py), by default in both modes that take steps (not after the encoder's one
pass, which is the instant answer).

Each mode is a start (`start_inference`: the code and camera before any step) and then, except
for `encoder`, auto-decoding steps from it (`refinement_steps`); `infer` runs both to the end.

The pose is given (an Orbit) or, without one, estimated by the encoder. Its azimuth has a
front/back twin (see models/encoder.py): two hypotheses, each with its azimuth-bin probability
mass. `encoder` alone takes the one with more mass; `refine` and `autodecode` weigh that prior
against how well the encoder's latent renders the photo from each (`hypothesis_posterior`), so
neither a lopsided prior nor a marginally better render decides alone.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from models.cameras import DEFAULT_RADIUS, Orbit, intrinsics, pixel_rays
from models.encoder import CarEncoder, uniform_peak_mass
from models.fitting import MIRROR_WEIGHT, FitStep, fit_latent, fit_latent_steps, psnr_from_mse
from models.modulation_fit import MODULATION_STEPS, refine_modulations

DEFAULT_STEPS = {"refine": 20, "autodecode": 300}
# On a GPU refine takes 100: 0.13 s from the CUDA graph, and with the modulation steps after them
# 0.26 s and at least autodecode-300's PSNR on every source (H100, RESULTS.md "Refine-100 past
# the latent"); on a CPU, 20 (0.8 s on 2 cores).
GPU_REFINE_STEPS = 100
# every held-out car, RESULTS.md "Past the latent": after 300 auto-decoding steps real cars +0.27 dB;
# after the encoder and 20 steps every source gains (real +0.45, all +0.28 dB)
DEFAULT_MODULATION_STEPS = {"encoder": 0, "refine": MODULATION_STEPS, "autodecode": MODULATION_STEPS}
HYPOTHESIS_RAYS = 4096
# Nats of evidence per unit of log MSE ratio between two hypotheses' renders: the slope of a
# logistic fit of "the true azimuth renders better than its front/back twin" on 1080 held-out
# views with the preview encoder's latent (engine/encoder_evaluation.py, RESULTS.md). 4096
# independent pixels would be worth 2048; a render's errors are correlated over whole parts of the
# car, so its pixels are worth far fewer observations.
EVIDENCE_PER_LOG_MSE = 19.2


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
    psnr: float  # of the whole input view rendered as the car from `orbit`, dB
    seconds: float  # wall time of the inference itself (not of the PSNR render)
    mode: InferenceMode
    steps: int
    pose_estimated: bool
    modulation_offset: torch.Tensor | None = None  # a car refined past its latent
    modulation_steps: int = 0


def default_mode(encoder: CarEncoder | None) -> InferenceMode:
    return InferenceMode.REFINE if encoder is not None else InferenceMode.AUTODECODE


def resolve_steps(mode: InferenceMode, steps: int | None,
                  device: torch.device | str | None = None) -> int:
    """Auto-decoding steps a mode takes: none for `encoder`, else `steps` or the mode's default
    on `device` (refine's is GPU_REFINE_STEPS on a GPU)."""
    if mode is InferenceMode.ENCODER:
        return 0
    if steps:
        return steps
    if mode is InferenceMode.REFINE and device is not None and torch.device(device).type == "cuda":
        return GPU_REFINE_STEPS
    return DEFAULT_STEPS[mode.value]


def resolve_modulation_steps(mode: InferenceMode, steps: int | None) -> int:
    """Modulation steps after a mode's latent: `steps`, or the mode's default when None."""
    return DEFAULT_MODULATION_STEPS[mode.value] if steps is None else steps


def check_inputs(mode: InferenceMode, encoder: CarEncoder | None, orbit: Orbit | None) -> None:
    """Raise InferenceError when the mode needs an encoder or a pose that is missing."""
    if mode is not InferenceMode.AUTODECODE and encoder is None:
        raise InferenceError(f"inference mode {mode.value!r} needs an encoder")
    if orbit is None and encoder is None:
        raise InferenceError("no pose given and no encoder to estimate it")


def render_view(model, latent: torch.Tensor, orbit: Orbit, res: int,
                modulation_offset: torch.Tensor | None = None) -> torch.Tensor:
    """(res, res, 3) colors in [0, 1] of the whole view of the car, no grad."""
    device = latent.device
    origins, dirs = pixel_rays(orbit.cam2world().to(device), intrinsics(res, res), res, res)
    origins, dirs = origins.reshape(1, -1, 3), dirs.reshape(1, -1, 3)
    with torch.no_grad():
        if modulation_offset is None:
            colors = model(origins, dirs, latent[None])
        else:
            modulations = model.modulations(latent[None], modulation_offset[None])
            colors = model.modulated_colors(origins, dirs, modulations)
    return colors.reshape(res, res, 3)


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


@dataclass(frozen=True)
class EncoderGuess:
    latent: torch.Tensor  # (latent_dim,)
    candidates: list[Orbit]  # the azimuth hypotheses at the estimated elevation, most mass first
    masses: torch.Tensor  # (len(candidates),) azimuth-bin probability near each
    uniform_mass: float  # a hypothesis's mass under a uniform azimuth distribution


@dataclass(frozen=True)
class PoseEstimate:
    """The encoder's pose of a photo, and how sure it is."""

    orbit: Orbit
    mass: float  # azimuth-bin probability near the chosen azimuth
    uniform_mass: float  # `mass` at chance (a pose head that learned nothing)
    side_probability: float  # posterior of the chosen hypothesis against its front/back twin


@dataclass
class InferenceStart:
    """What a mode starts from: the code and camera shown before any auto-decoding step."""

    latent: torch.Tensor  # (latent_dim,) on the model's device: the encoder's, or the table mean
    orbit: Orbit
    estimate: PoseEstimate | None  # None when the pose was given


def encoder_guess(encoder: CarEncoder, photo: torch.Tensor) -> EncoderGuess:
    out = encoder.encode_photo(photo)
    azimuths, masses = out.azimuth_hypotheses()
    elevation = float(out.elevation[0])
    return EncoderGuess(out.latent[0], [Orbit(float(a), elevation, DEFAULT_RADIUS) for a in azimuths[0]],
                        masses[0].cpu(), uniform_peak_mass(out.azimuth_logits.shape[-1]))


def hypothesis_posterior(masses: torch.Tensor, mses: torch.Tensor | None = None) -> torch.Tensor:
    """(K,) posterior of K pose hypotheses: prior ∝ their bin masses, likelihood from the MSE of
    the photo rendered from each (None: the prior alone).

    The log-likelihood ratio of two renders is EVIDENCE_PER_LOG_MSE · log(MSE_b / MSE_a): scale
    free (a car the latent renders poorly from both sides gives no strong evidence for either).
    """
    scores = masses.double().clamp_min(1e-12).log()
    if mses is not None:
        scores = scores - EVIDENCE_PER_LOG_MSE * mses.double().clamp_min(1e-12).log()
    return scores.softmax(-1)


def pick_hypothesis(model, guess: EncoderGuess, photo: torch.Tensor, seed: int = 0
                    ) -> tuple[int, torch.Tensor]:
    """The candidate with the highest posterior, from the guess's latent rendered from each on a
    few random pixels of the photo; returns its index and the (K,) posterior."""
    generator = torch.Generator().manual_seed(seed)
    count = min(HYPOTHESIS_RAYS, photo.shape[0] * photo.shape[1])
    pixels = torch.randperm(photo.shape[0] * photo.shape[1], generator=generator)[:count]
    latent = guess.latent.to(next(model.parameters()).device)
    mses = torch.tensor([photometric_mse(model, latent, orbit, photo.to(latent.device), pixels)
                         for orbit in guess.candidates])
    posterior = hypothesis_posterior(guess.masses, mses)
    return int(posterior.argmax()), posterior


def estimate_pose(model, guess: EncoderGuess, photo: torch.Tensor, photometric: bool) -> PoseEstimate:
    """The guess's most probable pose: by its bin masses alone, or also by the photo's renders."""
    if photometric:
        chosen, posterior = pick_hypothesis(model, guess, photo)
    else:
        posterior = hypothesis_posterior(guess.masses)
        chosen = int(posterior.argmax())
    return PoseEstimate(guess.candidates[chosen], float(guess.masses[chosen]), guess.uniform_mass,
                        float(posterior[chosen]))


def start_inference(model, photo: torch.Tensor, mode: InferenceMode,
                    encoder: CarEncoder | None = None, orbit: Orbit | None = None) -> InferenceStart:
    """The code and camera `mode` starts from for a (H, W, 3) uint8 photo; `orbit` None asks the
    encoder for the pose. Raises InferenceError from check_inputs."""
    check_inputs(mode, encoder, orbit)
    device = next(model.parameters()).device
    latent = model.latents.weight.detach().mean(0)
    estimate = None
    if mode is not InferenceMode.AUTODECODE or orbit is None:
        guess = encoder_guess(encoder, photo)
        if orbit is None:
            estimate = estimate_pose(model, guess, photo,
                                     photometric=mode is not InferenceMode.ENCODER)
            orbit = estimate.orbit
        if mode is not InferenceMode.AUTODECODE:
            latent = guess.latent
    return InferenceStart(latent.to(device), orbit, estimate)


def fit_camera(start: InferenceStart) -> torch.Tensor | Orbit:
    """The fit's camera: an estimated pose as an Orbit (refined with the latent), a given one as a
    fixed (1, 4, 4) cam2world."""
    return start.orbit if start.estimate is not None else start.orbit.cam2world()[None]


def refinement_steps(model, photo: torch.Tensor, start: InferenceStart, **fit_options
                     ) -> Iterator[FitStep]:
    """Auto-decoding steps from `start`, one FitStep each, forever; the caller decides when to stop."""
    res = photo.shape[0]
    return fit_latent_steps(model, photo[None], fit_camera(start), intrinsics(res, res),
                            init=start.latent, **fit_options)


def view_psnr(model, latent: torch.Tensor, orbit: Orbit, photo: torch.Tensor,
              modulation_offset: torch.Tensor | None = None) -> float:
    """PSNR of the whole photo against the car rendered from `orbit`, dB."""
    rendered = render_view(model, latent, orbit, photo.shape[0], modulation_offset)
    return psnr_from_mse(float(((rendered - photo.to(latent.device).float() / 255.0) ** 2).mean()))


def infer(
    model, photo: torch.Tensor, mode: InferenceMode, encoder: CarEncoder | None = None,
    orbit: Orbit | None = None, steps: int | None = None,
    on_step: Callable[[FitStep], None] | None = None, mirror_weight: float = MIRROR_WEIGHT,
    modulation_steps: int | None = None,
) -> Inference:
    """Reconstruct one photo, (H, W, 3) uint8 on white at the network's resolution.

    `orbit` None asks the encoder for the pose; `steps` and `modulation_steps` None take the
    mode's defaults; `mirror_weight` weighs the photo's mirrored rays in the steps
    (models/fitting.py). Raises InferenceError from check_inputs.
    """
    device = next(model.parameters()).device
    began = time.perf_counter()
    start = start_inference(model, photo, mode, encoder, orbit)
    steps = resolve_steps(mode, steps, device)
    latent, orbit = start.latent, start.orbit
    if steps:
        res = photo.shape[0]
        fit = fit_latent(model, photo[None], fit_camera(start), intrinsics(res, res), steps,
                         on_step=on_step, init=start.latent, cuda_graph=True,
                         mirror_weight=mirror_weight)
        latent, orbit = fit.latent.to(device), fit.orbit or orbit
    modulation_steps = resolve_modulation_steps(mode, modulation_steps)
    offset = None
    if modulation_steps:
        res = photo.shape[0]
        offset = refine_modulations(model, photo[None], orbit.cam2world()[None], intrinsics(res, res),
                                    latent, steps=modulation_steps, mirror_weight=mirror_weight,
                                    cuda_graph=True)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - began
    return Inference(latent, orbit, view_psnr(model, latent, orbit, photo, offset), seconds, mode,
                     steps, start.estimate is not None, offset, modulation_steps)
