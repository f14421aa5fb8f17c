"""Train the CNN prior (models/encoder.py) for a trained LFN checkpoint: photo → latent and pose.

    python -m tools.train_encoder --data data/cars --ckpt checkpoints/cars.pt [--minutes 15]

Every view of every training car is an example: its image, the car's auto-decoded latent (the
checkpoint's latent table row whose instance name is the car's id) and its camera's azimuth and
elevation (models/cameras.py, from the view's cam2world). The loss is the latent's squared error
relative to the table's mean squared norm, a cross-entropy on soft azimuth bins, a smooth L1 on
the elevation and, with --photo-rays > 0, the color error of the frozen LFN rendering the
predicted latent on that many random pixels of each view (at the true pose); with --photo-views
V > 1 those pixels are drawn from the view and V - 1 other random views of the same car (as many
from each, on average), so the code is asked to render the car where the photo does not see it.
The encoder is written beside the checkpoint (`cars.pt` → `cars.encoder.pt`) unless --out says
otherwise.

--init ENCODER starts from an encoder trained for another network, typically this checkpoint's
network before a fine-tune moved its latent table: its features still read the photos, so a short
run re-aims its heads instead of learning from the table's mean. The architecture flags must
describe the same encoder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.budget import budget_progress, step_budget
from engine.cardata import load_cars
from engine.cli import config_parser, option, required, run_entry_point
from models.cameras import orbit_from_cam2world
from models.checkpoint import load_checkpoint
from models.encoder import (
    ELEVATION_SCALE,
    CarEncoder,
    EncoderConfig,
    azimuth_targets,
    encoder_path,
    load_encoder,
    network_fingerprint,
    save_encoder,
)
from models.sampling import sample_rays

DEFAULT_STEPS = 20_000


@dataclasses.dataclass
class EncoderTrainConfig:
    data: str = required("the data set folder the checkpoint was trained on")
    ckpt: str = required("the trained LFN checkpoint whose latent table the encoder learns")
    out: str | None = option(None, "where to write the encoder; unset: beside the checkpoint")
    init: str | None = option(None, "start from this encoder's weights, not from the table's "
                                    "mean code")
    steps: int | None = option(None, "the step budget; unset: 20 000, or none when --minutes gives "
                                     "a time budget")
    minutes: float | None = option(None, "a time budget; with --steps, whichever ends first")
    batch: int = option(64, "views in each step")
    lr: float = option(2e-3, "AdamW's learning rate after the warm-up, then decayed")
    warmup_steps: int = option(500, "steps over which the rate rises from 0")
    final_lr_fraction: float = option(0.05, "the rate at the budget's end, as a fraction of --lr")
    weight_decay: float = option(1e-4, "AdamW's weight decay")
    pose_weight: float = option(1.0, "the pose terms' weight beside the latent's")
    photo_rays: int = option(0, "pixels of each view the frozen LFN renders from the predicted code "
                                "for a color term; 0: off")
    photo_weight: float = option(10.0, "the color term's weight")
    photo_views: int = option(1, "draw the color term's pixels from the input view and "
                                 "photo_views - 1 other views of the car")
    input_res: int = option(128, "the encoder's input side in pixels")
    channels: str = option("16,32,48,64,96,128", "channels of each stride-2 stage, comma-separated")
    hidden: int = option(256, "width of the layer the three heads share")
    azimuth_bins: int = option(72, "soft azimuth classes around the circle")
    max_cars: int | None = option(None, "train on the first N cars only; unset: all")
    log_every: int = option(50, "steps between log lines")
    seed: int = option(0, "seeds the weights and the drawn views")
    device: str = option("auto", "auto (a GPU if there is one), cpu or cuda")

    @property
    def step_budget(self) -> int | None:
        return step_budget(self.steps, self.minutes, DEFAULT_STEPS)


@dataclasses.dataclass
class TrainingViews:
    """Every view of the training cars with its targets, flattened to N = cars × views."""

    rgb: torch.Tensor  # (C, V, H, W, 3) uint8
    cam2world: torch.Tensor  # (C, V, 4, 4)
    intrinsics: torch.Tensor  # (3, 3)
    latents: torch.Tensor  # (C, latent_dim), the checkpoint's rows for these cars
    azimuth: torch.Tensor  # (C, V) degrees
    elevation: torch.Tensor  # (C, V) degrees

    def to(self, device: torch.device) -> TrainingViews:
        """On a GPU the whole set moves there once (≈ 1.7 GB for 710 cars × 50 views at 128²):
        a step's batch is then gathered on the device instead of copied from the host."""
        return TrainingViews(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


def training_views(cfg: EncoderTrainConfig, instance_names: list[str],
                   table: torch.Tensor) -> TrainingViews:
    cars = load_cars(cfg.data, "train", limit=cfg.max_cars)
    rows = {name: i for i, name in enumerate(instance_names)}
    missing = [car for car in cars.ids if car not in rows]
    if missing:
        raise ValueError(f"--data {cfg.data}: {len(missing)} training cars are not instances of "
                         f"--ckpt {cfg.ckpt} (first: {missing[0]}); was it trained on this data set?")
    orbits = [[orbit_from_cam2world(pose) for pose in car] for car in cars.cam2world]
    return TrainingViews(
        rgb=cars.rgb, cam2world=cars.cam2world, intrinsics=cars.intrinsics,
        latents=table[torch.tensor([rows[car] for car in cars.ids])],
        azimuth=torch.tensor([[o.azimuth for o in car] for car in orbits]),
        elevation=torch.tensor([[o.elevation for o in car] for car in orbits]),
    )


def encoder_config(cfg: EncoderTrainConfig, latent_dim: int) -> EncoderConfig:
    channels = tuple(int(c) for c in cfg.channels.split(","))
    return EncoderConfig(latent_dim=latent_dim, input_res=cfg.input_res, channels=channels,
                         hidden=cfg.hidden, azimuth_bins=cfg.azimuth_bins)


@dataclasses.dataclass
class Losses:
    latent: torch.Tensor
    azimuth: torch.Tensor
    elevation: torch.Tensor
    photo: torch.Tensor

    def total(self, cfg: EncoderTrainConfig) -> torch.Tensor:
        return (self.latent + cfg.pose_weight * (self.azimuth + self.elevation)
                + cfg.photo_weight * self.photo)

    def row(self) -> dict[str, float]:
        return {f.name: round(getattr(self, f.name).item(), 5) for f in dataclasses.fields(self)}


def photo_rays(views: TrainingViews, cars: torch.Tensor, picks: torch.Tensor,
               cfg: EncoderTrainConfig, generator: torch.Generator,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The photometric term's rays and colors, each (B, photo_rays · photo_views, 3): drawn from
    each example's view and photo_views - 1 other random views of its car."""
    shown = picks[:, None]  # (B, photo_views): the input view, then the others
    if cfg.photo_views > 1:
        others = torch.randint(views.rgb.shape[1], (len(cars), cfg.photo_views - 1),
                               generator=generator, device=device)
        shown = torch.cat([shown, others.to(shown.device)], 1)
    drawn = sample_rays(views.rgb, views.cam2world, views.intrinsics, shown,
                        cfg.photo_rays * cfg.photo_views, generator, objects=cars)
    return tuple(t.to(device) for t in drawn)


def batch_losses(encoder: CarEncoder, model, views: TrainingViews, cars: torch.Tensor,
                 picks: torch.Tensor, scale: torch.Tensor, cfg: EncoderTrainConfig,
                 generator: torch.Generator) -> Losses:
    device = scale.device
    cars, picks = cars.to(views.rgb.device), picks.to(views.rgb.device)
    rgb = views.rgb[cars, picks].to(device)  # (B, H, W, 3) uint8
    out = encoder(rgb.permute(0, 3, 1, 2).float() / 255.0)
    target = views.latents[cars].to(device)
    latent = (out.latent - target).pow(2).sum(-1).mean() / scale
    soft = azimuth_targets(views.azimuth[cars, picks].to(device), encoder.config.azimuth_bins)
    azimuth = -(soft * out.azimuth_logits.log_softmax(-1)).sum(-1).mean()
    elevation = F.smooth_l1_loss(out.elevation / ELEVATION_SCALE,
                                 views.elevation[cars, picks].to(device) / ELEVATION_SCALE)
    photo = torch.zeros((), device=device)
    if cfg.photo_rays > 0:
        origins, dirs, colors = photo_rays(views, cars, picks, cfg, generator, device)
        photo = F.mse_loss(model(origins, dirs, out.latent), colors)
    return Losses(latent, azimuth, elevation, photo)


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def initial_encoder(cfg: EncoderTrainConfig, table: torch.Tensor) -> CarEncoder:
    config = encoder_config(cfg, table.shape[1])
    if cfg.init is None:
        encoder = CarEncoder(config)
        encoder.start_from_mean(table.mean(0))
        return encoder
    encoder = load_encoder(cfg.init)  # no fingerprint check: its network is meant to differ
    if encoder.config != config:
        raise ValueError(f"--init {cfg.init}: its architecture {encoder.config} is not the one the "
                         f"flags give ({config}); pass the same --input-res, --channels, --hidden "
                         "and --azimuth-bins")
    return encoder


def train_encoder(cfg: EncoderTrainConfig) -> Path:
    """Train, save the encoder, return its path."""
    if cfg.photo_views < 1:
        raise ValueError(f"--photo-views {cfg.photo_views}: the photometric term needs at least the "
                         "input view (1)")
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    ckpt = load_checkpoint(cfg.ckpt)
    model = ckpt.model.to(device).eval().requires_grad_(False)
    table = ckpt.latents.detach()
    views = training_views(cfg, ckpt.instance_names, table)
    if device.type == "cuda":
        views = views.to(device)
    scale = table.pow(2).sum(1).mean().clamp(min=1e-6).to(device)
    encoder = initial_encoder(cfg, table).to(device).train()
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    sampler = torch.Generator().manual_seed(cfg.seed)
    num_cars, num_views = views.azimuth.shape
    out = Path(cfg.out) if cfg.out else encoder_path(cfg.ckpt)
    start, history, step, progress = time.perf_counter(), [], 0, 0.0
    budget = cfg.step_budget
    bar = tqdm(total=budget, desc="training encoder", unit="step")
    while (budget is None or step < budget) and progress < 1.0:
        # the rate follows whichever budget (steps or minutes) is further along: a cosine to its
        # end, after a linear warm-up (with CarEncoder.start_from_mean, what keeps ReLUs alive)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps) * (
                cfg.final_lr_fraction + (1 - cfg.final_lr_fraction)
                * 0.5 * (1 + math.cos(math.pi * progress)))
        cars = torch.randint(num_cars, (cfg.batch,), generator=sampler)
        picks = torch.randint(num_views, (cfg.batch,), generator=sampler)
        losses = batch_losses(encoder, model, views, cars, picks, scale, cfg, generator)
        optimizer.zero_grad(set_to_none=True)
        losses.total(cfg).backward()
        optimizer.step()
        step += 1
        elapsed = time.perf_counter() - start
        progress = budget_progress(step, elapsed, budget, cfg.minutes)
        bar.update(1)
        if step % cfg.log_every == 0 or step == 1:
            history.append({"step": step, "seconds": round(elapsed, 1), **losses.row()})
            bar.set_postfix(latent=history[-1]["latent"], azimuth=history[-1]["azimuth"])
    bar.close()
    history.append({"step": step, "seconds": round(time.perf_counter() - start, 1),
                    **losses.row()})
    meta = {
        "steps": step, "train_seconds": history[-1]["seconds"], "cars": num_cars,
        "views": num_views, "dataset": str(cfg.data), "checkpoint": Path(cfg.ckpt).name,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "date": dt.date.today().isoformat(), "train_config": dataclasses.asdict(cfg),
        "history": history,
    }
    save_encoder(encoder.eval().cpu(), network_fingerprint(ckpt.model), meta, out)
    print(f"wrote {out}: {step} steps in {history[-1]['seconds']:.0f} s, final losses "
          f"{losses.row()}")
    return out


def parse_args(argv: list[str] | None = None) -> tuple[EncoderTrainConfig, bool]:
    args = vars(config_parser(EncoderTrainConfig, __doc__.split("\n\n")[0]).parse_args(argv))
    debug = args.pop("debug")
    return EncoderTrainConfig(**args), debug


def main(argv: list[str] | None = None) -> int:
    cfg, debug = parse_args(argv)
    return run_entry_point(lambda: train_encoder(cfg), debug)


if __name__ == "__main__":
    sys.exit(main())
