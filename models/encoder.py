"""A small CNN prior: one photo of a car on white → its latent code and the camera's orbit pose.

Input: (B, 3, 128, 128) in [0, 1] (other sizes are resized); the image is inverted (1 - rgb) so the
white background is zero and only the car drives the activations.
Output (`EncoderOutput`): a latent in the checkpoint's latent space, a distribution over azimuth
bins, and the elevation in degrees.

The azimuth is a distribution over bins, not one regressed (cos, sin): a car seen from azimuth a
and from 180° - a shows nearly the same silhouette (front and back swap), so a regressed angle
lands between the two. The bins keep both modes; `azimuth_hypotheses` reads off the strongest
mode and the strongest one at least 45° away, each as the circular mean (cos, sin) of the
probabilities near its peak, with the probability mass there. models/inference.py picks between
the two by that mass and, before refinement, by how well each renders the photo.

The encoder is stored beside its checkpoint (`cars.pt` → `cars.encoder.pt`), loaded with
weights_only=True, and carries a fingerprint of the network it was trained for. Its weights may be
stored as float16 (`python -m tools.store_weights`), so that it and a large checkpoint stay under
the size limit together; loading widens them to float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.checkpoint import CheckpointError, atomic_save, read_torch_file, require_weight_dtype

ENCODER_FORMAT = "lfn-viewer-encoder"
ENCODER_VERSION = 1
ENCODER_SUFFIX = ".encoder.pt"
ELEVATION_SCALE = 30.0  # degrees per unit of the elevation head's output
HYPOTHESIS_SEPARATION_DEG = 45.0
PEAK_HALF_WIDTH_BINS = 1.5  # a hypothesis's angle and mass come from the bins this near its peak


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    latent_dim: int = 256
    input_res: int = 128
    channels: tuple[int, ...] = (16, 32, 48, 64, 96, 128)  # one stride-2 stage each, 128² → 2²
    hidden: int = 256
    azimuth_bins: int = 72


@dataclasses.dataclass
class EncoderOutput:
    latent: torch.Tensor  # (B, latent_dim)
    azimuth_logits: torch.Tensor  # (B, azimuth_bins)
    elevation: torch.Tensor  # (B,) degrees

    def azimuth_hypotheses(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Two azimuth candidates per image, (B, 2) degrees in (-180, 180], and their
        probability mass (B, 2); the first is the most probable."""
        probs = self.azimuth_logits.softmax(-1)
        bins = probs.shape[-1]
        centers = bin_centers(bins, probs.device)
        first = probs.argmax(-1)
        gap = angular_distance(centers[None], centers[first][:, None])
        second = probs.masked_fill(gap < HYPOTHESIS_SEPARATION_DEG, -1.0).argmax(-1)
        angles, masses = [], []
        for peak in (first, second):
            near = (angular_distance(centers[None], centers[peak][:, None])
                    <= PEAK_HALF_WIDTH_BINS * 360 / bins)
            weight = probs * near
            rad = torch.deg2rad(centers)
            angles.append(torch.rad2deg(torch.atan2((weight * rad.sin()).sum(-1),
                                                    (weight * rad.cos()).sum(-1))))
            masses.append(weight.sum(-1))
        return torch.stack(angles, -1), torch.stack(masses, -1)


def uniform_peak_mass(bins: int) -> float:
    """A hypothesis's mass when the azimuth distribution is uniform: what chance looks like."""
    centers = bin_centers(bins)
    return float((angular_distance(centers, centers[0]) <= PEAK_HALF_WIDTH_BINS * 360 / bins)
                 .float().mean())


def bin_centers(bins: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(bins,) degrees: bin k covers [k - 0.5, k + 0.5) × 360 / bins."""
    return torch.arange(bins, device=device, dtype=torch.float32) * (360.0 / bins)


def angular_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| on the circle, degrees in [0, 180]."""
    return (a - b + 180.0).remainder(360.0).sub(180.0).abs()


def azimuth_targets(azimuth: torch.Tensor, bins: int, sigma_bins: float = 1.0) -> torch.Tensor:
    """(B, bins) soft labels: a wrapped Gaussian around each true azimuth (degrees)."""
    gap = angular_distance(bin_centers(bins, azimuth.device)[None], azimuth[:, None])
    weight = torch.exp(-0.5 * (gap / (sigma_bins * 360.0 / bins)) ** 2)
    return weight / weight.sum(-1, keepdim=True)


def conv_block(inputs: int, outputs: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]


class CarEncoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        layers, width = [], 3
        for stage, out in enumerate(config.channels):
            layers += conv_block(width, out, stride=2)
            if stage >= 2:  # a second conv only where the maps are small (cheap on a CPU)
                layers += conv_block(out, out, stride=1)
            width = out
        self.features = nn.Sequential(*layers)
        # A 2 × 2 pool keeps where the car's mass lies (left/right, up/down), which the pose needs.
        self.trunk = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                   nn.Linear(4 * width, config.hidden), nn.ReLU(inplace=True))
        self.latent_head = nn.Linear(config.hidden, config.latent_dim)
        self.azimuth_head = nn.Linear(config.hidden, config.azimuth_bins)
        self.elevation_head = nn.Linear(config.hidden, 1)

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """images (B, 3, H, W) in [0, 1], car on white."""
        if images.shape[-1] != self.config.input_res or images.shape[-2] != self.config.input_res:
            images = F.interpolate(images, size=(self.config.input_res,) * 2, mode="bilinear",
                                   antialias=True, align_corners=False)
        h = self.trunk(self.features(1.0 - images))
        return EncoderOutput(self.latent_head(h), self.azimuth_head(h),
                             ELEVATION_SCALE * self.elevation_head(h)[:, 0])

    def start_from_mean(self, mean_latent: torch.Tensor) -> None:
        """Before training: predict the table's mean code for every photo (the latent head's
        weights zero, its bias the mean), so the first gradients are not those of codes ~30× the
        table's scale. Together with tools.train_encoder's warm-up this keeps the hidden ReLUs
        alive: without both, 247-253 of 256 died in every encoder trained so far, which left
        the latent and elevation heads almost nothing to read (TRAINING.md)."""
        with torch.no_grad():
            self.latent_head.weight.zero_()
            self.latent_head.bias.copy_(mean_latent)

    def encode_photo(self, rgb: torch.Tensor) -> EncoderOutput:
        """One (H, W, 3) uint8 photo → its EncoderOutput with batch size 1, no grad."""
        device = next(self.parameters()).device
        image = rgb.to(device).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            return self(image)


def network_fingerprint(model: nn.Module) -> str:
    """A short hash of a network's weights without its latent table: an encoder predicts codes for
    one network, and a checkpoint with appended instances still has the same network."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name != "latents.weight":
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def encoder_path(checkpoint: str | os.PathLike) -> Path:
    """Where a checkpoint's encoder lives: `cars.pt` → `cars.encoder.pt`."""
    path = Path(checkpoint)
    return path.with_name(path.stem + ENCODER_SUFFIX)


def save_encoder(encoder: CarEncoder, fingerprint: str, meta: dict[str, Any],
                 path: str | os.PathLike, weights_dtype: torch.dtype = torch.float32) -> None:
    require_weight_dtype(weights_dtype)
    config = dataclasses.asdict(encoder.config)
    config["channels"] = list(encoder.config.channels)
    # Only the weights are rounded: the batch norms' running statistics (a few KB) stay float32.
    # Rounded, they moved the codes of held-out cars' views twice as far as every weight did
    # (median 0.45 % against 0.25 % of a code's length, 63 views).
    weights = {name for name, _ in encoder.named_parameters()}
    atomic_save({
        "format": ENCODER_FORMAT, "version": ENCODER_VERSION, "config": config,
        "state_dict": {k: v.detach().cpu().to(weights_dtype) if k in weights else v.detach().cpu()
                       for k, v in encoder.state_dict().items()},
        "network_fingerprint": fingerprint, "meta": meta,
    }, path)


def is_encoder_file(path: str | os.PathLike) -> bool:
    return has_encoder_format(read_torch_file(path))


def has_encoder_format(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == ENCODER_FORMAT


def store_encoder_as(path: str | os.PathLike, out: str | os.PathLike,
                     weights_dtype: torch.dtype) -> None:
    """Rewrite an encoder file with its weights in `weights_dtype`, keeping its network
    fingerprint and meta."""
    data = encoder_file(path)
    save_encoder(load_encoder(path), data["network_fingerprint"], data.get("meta", {}), out,
                 weights_dtype)


def encoder_file(path: str | os.PathLike) -> dict:
    """An encoder file's contents, read with weights_only=True; anything else is refused."""
    data = read_torch_file(path)
    if not has_encoder_format(data):
        raise CheckpointError(path, "is a torch file but not an LFN viewer encoder")
    return data


def load_encoder(path: str | os.PathLike, model: nn.Module | None = None) -> CarEncoder:
    """Load an encoder file (float16 weights are widened to float32); with `model`, refuse one
    trained for another network."""
    data = encoder_file(path)
    if data.get("version") != ENCODER_VERSION:
        raise CheckpointError(path, f"encoder format version {data.get('version')!r} is not "
                              f"supported (expected {ENCODER_VERSION})")
    try:
        config = EncoderConfig(**{**data["config"], "channels": tuple(data["config"]["channels"])})
        encoder = CarEncoder(config)
        encoder.load_state_dict(data["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        detail = " ".join(str(e).split())[:200]
        raise CheckpointError(path, f"encoder weights do not match its config: {detail}") from e
    if model is not None:
        if data.get("network_fingerprint") != network_fingerprint(model):
            raise CheckpointError(path, "this encoder was trained for another network than the "
                                  "checkpoint's; retrain it with python -m tools.train_encoder")
        if config.latent_dim != model.latents.weight.shape[1]:
            raise CheckpointError(path, f"encoder predicts {config.latent_dim}-D latents, the "
                                  f"checkpoint has {model.latents.weight.shape[1]}-D")
    return encoder.eval()


def find_encoder(checkpoint: str | os.PathLike, model: nn.Module,
                 named: str | os.PathLike | None = None) -> CarEncoder | None:
    """The encoder at `named` (which must load), else the one beside the checkpoint, else None."""
    if named is not None:
        return load_encoder(named, model)
    path = encoder_path(checkpoint)
    return load_encoder(path, model) if path.exists() else None


def encoder_size_bytes(encoder: CarEncoder) -> int:
    return sum(t.numel() * t.element_size() for t in encoder.state_dict().values())

