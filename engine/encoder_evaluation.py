"""Scoring the inference modes (models/inference.py) on held-out cars, per car source.

For each car, its INPUT_VIEW is the photo. With the true pose given: PSNR of the input view and
of its held-out views for encoder-only, refine (N steps) and autodecode (from the mean latent, at
N steps and at the long default). With the pose estimated: the encoder's pose error (the angle
between estimated and true viewing directions), before and after refinement, and the same PSNRs
(the input view's against the estimated camera, the held-out views' against their true cameras).

Front/back evidence (`front_back_evidence`), over every held-out car: how far the encoder's latent,
rendered from a view's true azimuth and from its front/back twin, tells them apart by the
photometric loss; the slope it fits is models/inference.py's EVIDENCE_PER_LOG_MSE.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from engine.cardata import CarViews, car_source, load_cars, read_manifest
from engine.evaluation import INPUT_VIEW
from engine.metrics import psnr
from models.cameras import Orbit, orbit_from_cam2world, orbit_position
from models.encoder import CarEncoder
from models.fitting import MIRROR_WEIGHT
from models.inference import (
    HYPOTHESIS_RAYS,
    Inference,
    InferenceMode,
    infer,
    photometric_mse,
    render_view,
)


@dataclass(frozen=True)
class Method:
    name: str
    mode: InferenceMode
    steps: int | None


def methods(refine_steps: int, autodecode_steps: int) -> list[Method]:
    """Encoder, refine and autodecode at equal steps; the long autodecode only when it is longer."""
    chosen = [
        Method("encoder", InferenceMode.ENCODER, None),
        Method(f"refine_{refine_steps}", InferenceMode.REFINE, refine_steps),
        Method(f"autodecode_{refine_steps}", InferenceMode.AUTODECODE, refine_steps),
    ]
    if autodecode_steps > refine_steps:
        chosen.append(Method(f"autodecode_{autodecode_steps}", InferenceMode.AUTODECODE,
                             autodecode_steps))
    return chosen


def viewing_angle_error(estimated: Orbit, true: Orbit) -> float:
    """Degrees between the two cameras' directions to the target."""
    a = orbit_position(estimated.azimuth, estimated.elevation, 1.0).double()
    b = orbit_position(true.azimuth, true.elevation, 1.0).double()
    return math.degrees(math.acos(max(-1.0, min(1.0, float(a @ b)))))


def novel_view_psnr(model, result: Inference, rgb: torch.Tensor, poses: torch.Tensor,
                    views: torch.Tensor) -> float:
    res = rgb.shape[1]
    scores = [psnr(render_view(model, result.latent, orbit_from_cam2world(poses[v]), res,
                               result.modulation_offset).cpu(),
                   rgb[v].float() / 255) for v in views.tolist()]
    return sum(scores) / len(scores)


def spread_subset(ids: list[str], count: int | None) -> list[str]:
    """`count` ids spread evenly over the sorted ids (variants of one car sit together); None: all."""
    order = sorted(ids)
    if count is None:
        return order
    step = max(len(order) / max(count, 1), 1.0)
    return [order[int(i * step)] for i in range(min(count, len(order)))]


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


@dataclass(frozen=True)
class InferenceEvaluationConfig:
    """Which held-out cars are scored, and how; defaults as on tools.evaluate_encoder's command line."""

    data: Path  # a data set with a test split
    cars_per_source: int | None = None  # spread over each source's ids; None: all, 0: front/back alone
    novel_views: int = 5  # held-out views scored per car
    refine_steps: int = 20  # the steps of refine, and of the autodecode run beside it
    autodecode_steps: int = 300  # the long auto-decoding baseline; 0 leaves it out
    front_back_views: int = 5  # views per held-out car for the front/back evidence
    mirror_weight: float = MIRROR_WEIGHT  # the photo's mirrored rays in the steps (models/fitting.py)
    # after the latent steps of refine and autodecode, this many steps past the latent
    # (models/modulation_fit.py); 0 keeps the modes' scores those of their latents alone
    modulation_steps: int = 0


def evaluate_inference(model, encoder: CarEncoder, config: InferenceEvaluationConfig) -> dict:
    """Per source: each chosen car's row of every method (module docstring) and their medians;
    then the front/back evidence over every held-out car."""
    refine_steps, mirror_weight = config.refine_steps, config.mirror_weight

    def options(mode: InferenceMode) -> dict:  # the encoder's column stays one pass
        steps = 0 if mode is InferenceMode.ENCODER else config.modulation_steps
        return {"mirror_weight": mirror_weight, "modulation_steps": steps}

    manifest = {c["id"]: c for c in read_manifest(config.data)["cars"]}
    cars = load_cars(config.data, "test")
    sources = sorted({str(car_source(manifest[i])) for i in cars.ids})
    chosen = {s: spread_subset([i for i in cars.ids if car_source(manifest[i]) == s],
                               config.cars_per_source) for s in sources}
    index = {car_id: c for c, car_id in enumerate(cars.ids)}
    targets = torch.nonzero(~cars.train_view).flatten()[:config.novel_views]
    per_source = {}
    for source in (s for s in sources if chosen[s]):  # --cars-per-source 0: front/back alone
        rows = []
        for car_id in tqdm(chosen[source], desc=f"{source} cars", leave=False):
            c = index[car_id]
            photo, truth = cars.rgb[c, INPUT_VIEW], orbit_from_cam2world(cars.cam2world[c, INPUT_VIEW])
            row = {"id": cars.ids[c]}
            for method in methods(refine_steps, config.autodecode_steps):
                result = infer(model, photo, method.mode, encoder, truth, method.steps,
                               **options(method.mode))
                row[method.name] = {
                    "input_psnr": round(result.psnr, 3),
                    "novel_psnr": round(novel_view_psnr(model, result, cars.rgb[c],
                                                        cars.cam2world[c], targets), 3),
                    "seconds": round(result.seconds, 3)}
            for mode in (InferenceMode.ENCODER, InferenceMode.REFINE):
                result = infer(model, photo, mode, encoder, None, refine_steps, **options(mode))
                row[f"pose_error_deg_{mode.value}"] = round(viewing_angle_error(result.orbit, truth),
                                                            3)
                row[f"{mode.value}_estimated_pose"] = {
                    "input_psnr": round(result.psnr, 3),
                    "novel_psnr": round(novel_view_psnr(model, result, cars.rgb[c],
                                                        cars.cam2world[c], targets), 3),
                    "seconds": round(result.seconds, 3)}
            rows.append(row)
        names = [m.name for m in methods(refine_steps, config.autodecode_steps)] + [
            f"{m.value}_estimated_pose" for m in (InferenceMode.ENCODER, InferenceMode.REFINE)]
        per_source[source] = {
            "cars": len(rows),
            **{f"{n}_{k}_median": median([r[n][k] for r in rows])
               for n in names for k in ("input_psnr", "novel_psnr", "seconds")},
            **{f"pose_error_deg_{m}_median": median([r[f"pose_error_deg_{m}"] for r in rows])
               for m in ("encoder", "refine")},
            "rows": rows,
        }
    return {"input_view": INPUT_VIEW, "novel_views": len(targets), "mirror_weight": mirror_weight,
            "modulation_steps": config.modulation_steps,
            "per_source": per_source,
            "front_back": front_back_evidence(model, encoder, cars, config.front_back_views)}


def front_back_evidence(model, encoder: CarEncoder, cars: CarViews, views: int) -> dict:
    """Per view (the first `views` of every car), r = log(MSE_twin / MSE_true): the encoder's
    latent rendered from the true camera and from its front/back twin (azimuth 180° - a, same
    elevation) on HYPOTHESIS_RAYS pixels, as the pose pick renders them. The logistic fit
    P(true renders better | r) = sigmoid(slope · r) gives the nats of evidence per unit of r."""
    ratios = []
    for c in tqdm(range(len(cars.ids)), desc="front/back", leave=False):
        for v in range(min(views, cars.rgb.shape[1])):
            photo, truth = cars.rgb[c, v], orbit_from_cam2world(cars.cam2world[c, v])
            twin = Orbit(180.0 - truth.azimuth, truth.elevation, truth.radius)
            latent = encoder.encode_photo(photo).latent[0].to(next(model.parameters()).device)
            pixels = torch.randperm(photo.shape[0] * photo.shape[1],
                                    generator=torch.Generator().manual_seed(v))[:HYPOTHESIS_RAYS]
            photo = photo.to(latent.device)
            ratios.append(math.log(photometric_mse(model, latent, twin, photo, pixels)
                                   / photometric_mse(model, latent, truth, photo, pixels)))
    r = torch.tensor(ratios, dtype=torch.float64)
    return {"views": len(ratios), "twin_renders_better": int((r < 0).sum()),
            "log_mse_ratio_median": round(float(r.median()), 4) if len(r) else None,
            "evidence_slope": logistic_slope(r)}


def logistic_slope(r: torch.Tensor) -> float | None:
    """The maximum-likelihood slope of sigmoid(slope · r) for outcomes that all came true; None
    when no r is negative (nothing bounds the slope)."""
    if not (r < 0).any():
        return None
    slope = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([slope], max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = -torch.nn.functional.logsigmoid(slope * r).mean()
        value.backward()
        return value

    optimizer.step(loss)
    return round(float(slope), 2)


def encoder_latency_ms(encoder: CarEncoder, res: int, repeats: int = 20) -> float:
    """Median wall time of one forward pass on one image, after a warm-up."""
    device = next(encoder.parameters()).device
    photo = torch.full((res, res, 3), 255, dtype=torch.uint8, device=device)
    encoder.encode_photo(photo)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        encoder.encode_photo(photo)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000 * (time.perf_counter() - start))
    return round(statistics.median(times), 2)
