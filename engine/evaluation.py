"""Scoring a checkpoint on the car data set: novel views of training cars, and single-image
reconstruction of held-out cars (network frozen, a fresh latent fitted to one view).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm import tqdm

from engine.cardata import load_cars
from engine.metrics import psnr, ssim
from models.checkpoint import Checkpoint
from models.fitting import fit_latent
from models.renderer import make_renderer

INPUT_VIEW = 0  # the single observed view of a held-out car: its first training view


def score_views(renderer, latent: torch.Tensor, rgb: torch.Tensor, poses: torch.Tensor,
                views: torch.Tensor) -> list[tuple[float, float]]:
    """(PSNR, SSIM) for each listed view rendered with `latent`."""
    renderer.set_latent(latent)
    res = rgb.shape[1]
    scores = []
    for v in views.tolist():
        image = renderer.render(poses[v], res).float()
        target = rgb[v].to(image.device).float() / 255
        scores.append((psnr(image, target), ssim(image, target)))
    return scores


def mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def evaluate(ckpt: Checkpoint, data: Path, device: torch.device, fit_steps: int,
             max_cars: int | None, max_views: int | None) -> dict:
    model = ckpt.model.to(device)
    renderer = make_renderer(model, device, "fp32", "eager")
    index = {name: i for i, name in enumerate(ckpt.instance_names)}

    seen = load_cars(data, "train", limit=max_cars)
    trained_at = ckpt.meta.get("resolution")
    if trained_at is not None and trained_at != seen.resolution:
        raise ValueError(f"{data}: {seen.resolution}² px views, but the checkpoint was trained on "
                         f"{trained_at}² px views (another data set?): its scores would not compare")
    test_views = torch.nonzero(~seen.train_view).flatten()[:max_views]
    heldout = []
    for c, car_id in enumerate(tqdm(seen.ids, desc="held-out views", leave=False)):
        if car_id in index:
            heldout += score_views(renderer, ckpt.latents[index[car_id]], seen.rgb[c],
                                   seen.cam2world[c], test_views)

    unseen = load_cars(data, "test", limit=max_cars)
    target_views = torch.nonzero(~unseen.train_view).flatten()[:max_views]
    single, fit_seconds = [], []
    for c in tqdm(range(len(unseen.ids)), desc="single-image fits", leave=False):
        start = time.perf_counter()
        fit = fit_latent(model, unseen.rgb[c, INPUT_VIEW:INPUT_VIEW + 1],
                         unseen.cam2world[c, INPUT_VIEW:INPUT_VIEW + 1], unseen.intrinsics,
                         steps=fit_steps, seed=c)
        fit_seconds.append(time.perf_counter() - start)
        single += score_views(renderer, fit.latent, unseen.rgb[c], unseen.cam2world[c],
                              target_views)
    return {
        "psnr_heldout_views": mean([p for p, _ in heldout]),
        "ssim_heldout_views": mean([s for _, s in heldout]),
        "psnr_single_image": mean([p for p, _ in single]),
        "ssim_single_image": mean([s for _, s in single]),
        "heldout_views_scored": len(heldout),
        "single_image_cars": len(unseen.ids),
        "single_image_views_scored": len(single),
        "fit_steps": fit_steps,
        "fit_seconds_median": sorted(fit_seconds)[len(fit_seconds) // 2] if fit_seconds else 0.0,
        "resolution": seen.resolution,
        "model": model.kind,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "date": time.strftime("%Y-%m-%d"),
        "train_steps": ckpt.meta.get("steps"),
        "train_seconds": ckpt.meta.get("train_seconds"),
    }
