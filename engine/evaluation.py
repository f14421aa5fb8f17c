"""Scoring a checkpoint on the car data set: novel views of training cars, and single-image
reconstruction of held-out cars (network frozen, a fresh latent fitted to one view).

Every car of each split is scored unless limited; each car gives one row (CarScore), and the
summaries (per source: real / procedural, and over all cars; per origin: TORCS, SUMO, FlightGear,
procedural) pool those rows' views, so a summary's PSNR is the mean over its views. A split the
data set lacks leaves its metrics absent, with a note.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from engine.cardata import CarSource, CarViews, car_origin, car_source, load_cars, read_manifest
from engine.metrics import psnr, ssim
from models.checkpoint import Checkpoint
from models.encoder import CarEncoder
from models.fitting import MIRROR_WEIGHT, fit_latent
from models.modulation_fit import refine_modulations
from models.renderer import make_renderer

INPUT_VIEW = 0  # the single observed view of a held-out car: its first training view
# What each split's cars are scored on: training cars on their held-out views (their latents
# were learned), held-out cars by single-image reconstruction.
TASK_OF_SPLIT = {"train": "heldout_views", "test": "single_image"}
ALL = "all"  # the summary over every source


def score_views(renderer, rgb: torch.Tensor, poses: torch.Tensor,
                views: torch.Tensor) -> list[tuple[float, float]]:
    """(PSNR, SSIM) for each listed view rendered with the renderer's current car."""
    res = rgb.shape[1]
    scores = []
    for v in views.tolist():
        image = renderer.render(poses[v], res).float()
        target = rgb[v].to(image.device).float() / 255
        scores.append((psnr(image, target), ssim(image, target)))
    return scores


def mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


@dataclass(frozen=True)
class CarScore:
    """One car's row: its mean PSNR and SSIM over the views scored."""

    car_id: str
    source: CarSource
    origin: str  # finer than source: "torcs", "sumo", "flightgear", "procedural", ...
    split: str  # "train": held-out views of a training car; "test": single-image reconstruction
    psnr: float
    ssim: float
    views_scored: int
    input_view_psnr: float | None = None  # single image: the fitted latent on the view it saw
    fit_seconds: float | None = None

    @property
    def task(self) -> str:
        return TASK_OF_SPLIT[self.split]


@dataclass(frozen=True)
class Summary:
    """PSNR and SSIM pooled over every view of a group of cars."""

    psnr: float
    ssim: float
    views: int
    cars: int


def summarize(rows: list[CarScore]) -> Summary | None:
    views = sum(r.views_scored for r in rows)
    if views == 0:
        return None
    pooled = lambda metric: sum(getattr(r, metric) * r.views_scored for r in rows) / views  # noqa: E731
    return Summary(pooled("psnr"), pooled("ssim"), views, len(rows))


@dataclass
class Evaluation:
    cars: list[CarScore]
    notes: list[str]
    fit_steps: int
    fit_start: str  # where a single-image fit starts: "mean" (the latent table's) or "encoder"
    fit_mirror_weight: float  # the weight of the photo's mirrored rays in a fit (models/fitting.py)
    fit_modulation_steps: int  # steps refining the fit's modulations past its latent (0: none)
    max_cars: int | None  # limits of a quick run: the first cars of each split, views of a car
    max_views: int | None
    resolution: int | None  # None: no split had cars
    model: str
    device: str
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d"))
    train_steps: int | None = None
    train_seconds: float | None = None

    @property
    def sources(self) -> list[CarSource]:
        """The sources of the cars scored, in CarSource's order."""
        return [s for s in CarSource if any(r.source == s for r in self.cars)]

    @property
    def origins(self) -> list[str]:
        """The origins of the cars scored, sorted."""
        return sorted({r.origin for r in self.cars})

    def summary(self, task: str, source: CarSource | str = ALL,
                origin: str | None = None) -> Summary | None:
        """A task's summary over one source's cars (or all), or over one origin's."""
        return summarize([r for r in self.cars if r.task == task
                          and (source == ALL or r.source == source)
                          and (origin is None or r.origin == origin)])

    def headline(self, source: CarSource | str = ALL) -> dict[str, float]:
        """The four headline metrics of a source (those its cars have)."""
        out = {}
        for task in TASK_OF_SPLIT.values():
            if (s := self.summary(task, source)) is not None:
                out |= {f"psnr_{task}": s.psnr, f"ssim_{task}": s.ssim}
        return out

    def meta_metrics(self) -> dict:
        """The headline metrics, overall and per source, rounded, as a checkpoint's meta keeps
        them (plain strings and floats: checkpoints load with weights_only)."""
        rounded = lambda metrics: {k: round(v, 4) for k, v in metrics.items()}  # noqa: E731
        return rounded(self.headline()) | {
            "per_source": {str(s): rounded(self.headline(s)) for s in self.sources}}

    def to_json(self) -> dict:
        overall = {task: self.summary(task) for task in TASK_OF_SPLIT.values()}
        fit_seconds = sorted(r.fit_seconds for r in self.cars if r.fit_seconds is not None)
        return {
            # the headline over all cars, flat as before (None where the split is absent)
            **{f"{m}_{task}": getattr(s, m) if s else None
               for task, s in overall.items() for m in ("psnr", "ssim")},
            "heldout_views_scored": overall["heldout_views"].views if overall["heldout_views"] else 0,
            "single_image_cars": overall["single_image"].cars if overall["single_image"] else 0,
            "single_image_views_scored":
                overall["single_image"].views if overall["single_image"] else 0,
            "fit_steps": self.fit_steps,
            "fit_start": self.fit_start,
            "fit_mirror_weight": self.fit_mirror_weight,
            "fit_modulation_steps": self.fit_modulation_steps,
            "fit_seconds_median": fit_seconds[len(fit_seconds) // 2] if fit_seconds else None,
            "per_source": {
                str(source): {task: asdict(s) if (s := self.summary(task, source)) else None
                              for task in TASK_OF_SPLIT.values()}
                for source in [*self.sources, ALL]
            },
            "per_origin": {
                origin: {task: asdict(s) if (s := self.summary(task, origin=origin)) else None
                         for task in TASK_OF_SPLIT.values()}
                for origin in self.origins
            },
            "limits": ({"max_cars": self.max_cars, "max_views": self.max_views}
                       if (self.max_cars, self.max_views) != (None, None) else None),
            "notes": self.notes,
            "resolution": self.resolution,
            "model": self.model,
            "device": self.device,
            "date": self.date,
            "train_steps": self.train_steps,
            "train_seconds": self.train_seconds,
            "cars": [asdict(r) for r in self.cars],
        }


def evaluate(ckpt: Checkpoint, data: Path, device: torch.device, fit_steps: int, *,
             max_cars: int | None = None, max_views: int | None = None,
             any_resolution: bool = False, encoder: CarEncoder | None = None,
             mirror_weight: float = MIRROR_WEIGHT, modulation_steps: int = 0,
             tasks: Collection[str] = tuple(TASK_OF_SPLIT.values())) -> Evaluation:
    """Score every car of each split the data set has, for each of `tasks` (at most max_cars per
    split and max_views views per car where given: the first ones, in manifest order; training
    cars the checkpoint has no code for are noted and not loaded). Views of another resolution
    than the checkpoint's are refused unless `any_resolution` (an LFN's rays are continuous, so a
    128² model can be scored on 256² views; the result notes it). A single-image fit starts from
    the latent table's mean, or with `encoder` from its code for the input view (the pose is
    given either way), and fits the photo's mirrored rays with `mirror_weight`; with
    `modulation_steps` the fitted latent's modulations are then refined that many steps
    (models/modulation_fit.py)."""
    model = ckpt.model.to(device)
    if encoder is not None:
        encoder = encoder.to(device)
    # the network's own colors on every ray, as the paper scores them and every earlier result
    # was; the viewer's bound (LFNRenderer) only whitens rays that meet no object
    renderer = make_renderer(model, device, "fp32", "eager", bounded=False)
    entries = read_manifest(data)["cars"]
    where_from = {car["id"]: (car_source(car), car_origin(car)) for car in entries}
    rows, notes, resolution = [], [], None
    for split, task in TASK_OF_SPLIT.items():
        if task not in tasks:
            notes.append(f"{task} not asked for: its metrics absent")
            continue
        in_split = [car["id"] for car in entries if car["split"] == split]
        if not in_split:
            notes.append(f"no {split}-split cars in the data set: {task} metrics absent")
            continue
        ids = None
        if split == "train":  # only cars with a code: a data set may hold many more (cars_all)
            ids = set(ckpt.instance_names).intersection(in_split)
            if unknown := [car_id for car_id in in_split if car_id not in ids]:
                notes.append(f"{len(unknown)} training cars are not in the checkpoint, not "
                             f"scored (first: {unknown[0]})")
            if not ids:
                continue
        cars = load_cars(data, split, limit=max_cars, ids=ids)
        resolution = cars.resolution
        trained_at = ckpt.meta.get("resolution")
        if trained_at is not None and trained_at != resolution:
            if not any_resolution:
                raise ValueError(f"{data}: {resolution}² px views, but the checkpoint was trained "
                                 f"on {trained_at}² px views (another data set? --any-resolution "
                                 "scores it anyway)")
            notes.append(f"{split} split: {resolution}² px views, the checkpoint was trained on "
                         f"{trained_at}² px views")
        views = torch.nonzero(~cars.train_view).flatten()[:max_views]
        if not len(views):
            notes.append(f"the data set has no held-out (test) views: {task} metrics absent")
            continue
        if split == "train":
            rows += score_heldout_views(ckpt, renderer, cars, views, where_from)
        else:
            rows += score_single_images(ckpt.model, renderer, cars, views, where_from, fit_steps,
                                        encoder, mirror_weight, modulation_steps)
    return Evaluation(
        cars=rows, notes=notes, fit_steps=fit_steps, fit_start="mean" if encoder is None else "encoder",
        fit_mirror_weight=mirror_weight, fit_modulation_steps=modulation_steps,
        max_cars=max_cars, max_views=max_views,
        resolution=resolution, model=model.kind,
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        train_steps=ckpt.meta.get("steps"), train_seconds=ckpt.meta.get("train_seconds"),
    )


def score_heldout_views(ckpt: Checkpoint, renderer, cars: CarViews, views: torch.Tensor,
                        where_from: dict[str, tuple[CarSource, str]]) -> list[CarScore]:
    """Training cars (all in the checkpoint), each with its learned latent, on its held-out views."""
    index = {name: i for i, name in enumerate(ckpt.instance_names)}
    rows = []
    for c, car_id in enumerate(tqdm(cars.ids, desc="held-out views", leave=False)):
        renderer.set_latent(ckpt.latents[index[car_id]])
        scores = score_views(renderer, cars.rgb[c], cars.cam2world[c], views)
        rows.append(car_row(car_id, where_from[car_id], "train", scores))
    return rows


def score_single_images(model, renderer, cars: CarViews, views: torch.Tensor,
                        where_from: dict[str, tuple[CarSource, str]],
                        fit_steps: int, encoder: CarEncoder | None = None,
                        mirror_weight: float = MIRROR_WEIGHT,
                        modulation_steps: int = 0) -> list[CarScore]:
    """Held-out cars: a latent fitted to one view (network frozen), scored on the held-out views;
    the fit starts from the table's mean, or from `encoder`'s code for that view (its time counted);
    with `modulation_steps` its modulations are refined past it (models/modulation_fit.py)."""
    rows = []
    for c, car_id in enumerate(tqdm(cars.ids, desc="single-image fits", leave=False)):
        start = time.perf_counter()
        photo = cars.rgb[c, INPUT_VIEW]
        init = None if encoder is None else encoder.encode_photo(photo).latent[0]
        pose = cars.cam2world[c, INPUT_VIEW:INPUT_VIEW + 1]
        fit = fit_latent(model, photo[None], pose, cars.intrinsics, steps=fit_steps, seed=c, init=init,
                         mirror_weight=mirror_weight)
        offset = None if not modulation_steps else refine_modulations(
            model, photo[None], pose, cars.intrinsics, fit.latent, steps=modulation_steps, seed=c,
            mirror_weight=mirror_weight)
        renderer.set_latent(fit.latent, offset)
        seconds = time.perf_counter() - start
        (input_psnr, _), = score_views(renderer, cars.rgb[c], cars.cam2world[c], torch.tensor([INPUT_VIEW]))
        scores = score_views(renderer, cars.rgb[c], cars.cam2world[c], views)
        rows.append(car_row(car_id, where_from[car_id], "test", scores, input_psnr, seconds))
    return rows


def car_row(car_id: str, source_and_origin: tuple[CarSource, str], split: str,
            scores: list[tuple[float, float]], input_view_psnr: float | None = None,
            fit_seconds: float | None = None) -> CarScore:
    return CarScore(car_id, *source_and_origin, split, mean([p for p, _ in scores]),
                    mean([s for _, s in scores]), len(scores), input_view_psnr, fit_seconds)
