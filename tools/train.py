"""Train an auto-decoded LFN (or the volumetric baseline) on the car data set.

    python -m tools.train --data data/cars --out runs/lfn [--model volumetric] [--minutes 20]
    torchrun --nproc-per-node 2 -m tools.train ...      # DistributedDataParallel, one GPU a process

Each step draws `objects_per_step` training cars and `rays_per_object` random pixels of their
training views; the loss is image-space MSE plus a latent-norm penalty. Latent codes live in the
model's embedding table, replicated on every rank: DDP all-reduces their gradients like any other
weight, so every rank holds the same table after every step (no stale codes). The learning rate
is per-GPU-batch; with N GPUs the global batch grows N× and the rate is kept (documented in
TRAINING.md).

The training state (weights, optimizer, RNG, step, elapsed time) is written atomically every
`save_every` steps; --resume continues from the newest state that loads, skipping a corrupt one,
bit for bit as if the run had not stopped (on one device). --call-steps / --call-minutes end this
process early with a state (the schedule still spans --steps / --minutes), and so does SIGTERM:
long runs go on across calls and sessions (TRAINING.md). A step whose gradients are not finite
is skipped and counted (`skipped_steps` in the log and the state).

--geometry-weight W > 0 adds a geometry term (engine/reprojection.py, fast step and LFN only): on
--geometry-rays rays of each car the LFN's gradient depth is pulled toward the depth at which a
patch of the ray's photo matches the nearest --geometry-neighbours training views (stereo).
--latent-noise S > 0 renders each drawn car from its code plus N(0, S²) noise (the penalty still
reads the clean code), so the network learns to render a car from every code near a training one.
--init CKPT starts from a checkpoint's network and the latent codes of the cars it shares by name
(a fine-tune); a raw-ray LFN may start a run with --frequencies F > 0, and a FiLM-only one with
--weight-rank R > 0 (each the same function at first).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from engine.budget import budget_progress, step_budget
from engine.cardata import CarViews, load_cars
from engine.cli import config_parser, debug_requested, option, required, run_entry_point
from engine.metrics import psnr
from engine.reprojection import GeometryConfig, ReprojectionLoss
from engine.train_step import draw_batch, load_optimizer_state, make_training_step
from models.cameras import rays_through_pixels
from models.checkpoint import atomic_save, checkpoint_dict, load_checkpoint
from models.fitting import psnr_from_mse
from models.lfn import FiLMNetwork, LFNConfig, LightFieldNetwork
from models.volumetric import VolumetricConfig, VolumetricField

STATE_GLOB = "state_*.pt"
DEFAULT_STEPS = 200_000


@dataclasses.dataclass
class TrainConfig:
    data: str = required("the data set folder (tools.make_dataset)")
    out: str = required("the run's folder: log, training states, model.pt")
    model: str = option("lfn", "lfn, or volumetric for the baseline")
    steps: int | None = option(None, "the step budget; unset: 200 000, or none when --minutes "
                                     "gives a time budget (with both, whichever ends first)")
    minutes: float | None = option(None, "a training-time budget, which the lr decay then follows")
    objects_per_step: int = option(64, "cars drawn each step")
    rays_per_object: int = option(1024, "random pixels of each drawn car's training views")
    lr: float = option(5e-4, "the network's Adam learning rate, decayed over the budget")
    latent_lr: float = option(1e-3, "the latent codes' learning rate, decayed alike")
    final_lr_fraction: float = option(0.1, "the rates at the budget's end, as a fraction of the start")
    latent_weight: float = option(1e-4, "the latent-norm penalty's weight")
    latent_dim: int = option(256, "a car's latent code size")
    width: int = option(256, "hidden units of each layer of the per-ray network")
    hidden_layers: int = option(6, "hidden layers of the per-ray network")
    cond_width: int = option(256, "the conditioning network's hidden width (code → modulations)")
    frequencies: int = option(0, "Fourier features of the rays (models/encoding.py); 0: raw Plücker "
                                 "coordinates")
    weight_rank: int = option(0, "rank of the weight changes the conditioning network generates "
                                 "per car (models/lfn.py); 0: FiLM alone")
    save_every: int = option(1000, "steps between training states")
    eval_every: int = option(1000, "steps between held-out-view PSNR checks")
    eval_cars: int = option(8, "cars in each check")
    eval_views: int = option(25, "held-out views of each car in each check")
    log_every: int = option(50, "steps between log lines")
    keep_states: int = option(2, "training states kept, newest first")
    seed: int = option(0, "seeds the codes, the drawn rays and the weights")
    resume: bool = option(False, "continue from the newest training state in --out")
    max_cars: int | None = option(None, "train on the first N cars only; unset: all")
    device: str = option("auto", "auto (a GPU if there is one) or cpu")
    step_impl: str = option("fast", "fast, or reference: the plain step it is tested against "
                                    "(engine/train_step.py)")
    compile: str = option("off", "torch.compile mode around the fast step's forward and loss: off, "
                                 "default, reduce-overhead, max-autotune-no-cudagraphs")
    call_steps: int | None = option(None, "end this process after this many steps, with a state "
                                          "(--resume goes on)")
    call_minutes: float | None = option(None, "... or after this much wall time (checked every "
                                              "window)")
    init: str | None = option(None, "start from this checkpoint's network and the codes of the "
                                    "cars it shares by name")
    geometry_weight: float = option(0.0, "the reprojection term's weight (engine/reprojection.py); "
                                         "0: off")
    geometry_rays: int = option(128, "rays of each drawn car the geometry term checks (at most "
                                     "--rays-per-object)")
    geometry_neighbours: int = option(3, "training views each checked ray's depth is judged in")
    latent_noise: float = option(0.0, "σ of the noise added to each drawn code "
                                      "(engine/train_step.py); 0: off")

    @property
    def step_budget(self) -> int | None:
        return step_budget(self.steps, self.minutes, DEFAULT_STEPS)


# ---------------------------------------------------------------- distributed set-up


def settled(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` once no gloo worker thread holds it any more.

    A gloo collective returns when its work is done, but the worker thread drops its reference
    to the work (and so to the tensor) a moment later: measured here, in 0.4 % of all-reduces,
    up to 9 ms later on a loaded CPU. If Python has dropped the tensor by then, the worker frees
    its Python object and must take the GIL; during interpreter exit that ends the thread inside
    C++ and the process aborts ("terminate called without an active exception", the flaky
    2-process test). DDP keeps the process group, and so its threads, alive past
    destroy_process_group, so the exit does not wait for them. NCCL's watchdog holds tensors
    longer and is joined by destroy_process_group: only CPU tensors wait here.
    """
    deadline = time.monotonic() + 5.0
    while tensor.device.type == "cpu" and tensor._use_count() > 1 and time.monotonic() < deadline:
        time.sleep(0)
    return tensor


@dataclasses.dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rank0_value(self, value: float) -> float:
        """Rank 0's `value`, on every rank."""
        if self.world == 1:
            return value
        shared = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.broadcast(shared, src=0)
        return settled(shared).item()

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any."""
        if self.world == 1:
            return flag
        shared = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(shared, op=dist.ReduceOp.MAX)
        return settled(shared).item() > 0


def setup_distributed(device_choice: str) -> Dist:
    """One process per GPU under torchrun (env WORLD_SIZE); gloo on CPUs, NCCL on GPUs."""
    use_cuda = torch.cuda.is_available() and device_choice != "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)  # bound to its GPU from the start
    else:
        dist.init_process_group("gloo")
    return Dist(rank, world, device)


def max_diff_from_rank0(values: torch.Tensor) -> float:
    """The largest |value - rank 0's value| over all ranks."""
    reference = values.clone()
    dist.broadcast(reference, src=0)
    diff = (values - settled(reference)).abs().max()
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return settled(diff).item()


def replica_check(model, drawn: torch.Tensor) -> dict:
    """How far each rank's weights are from rank 0's, and how many cars no rank has drawn yet.

    DDP keeps replicas equal by construction; this measures it instead of trusting it, for the
    whole model and for the latent table alone (a stale code would show up there first).
    """
    weights = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    seen = drawn.to(torch.int32)
    dist.all_reduce(seen)
    settled(seen)
    return {
        "replica_max_abs_diff": max_diff_from_rank0(weights),
        "latent_replica_max_abs_diff": max_diff_from_rank0(model.latents.weight.detach().float()),
        "cars_never_drawn": int((seen == 0).sum()),
    }


# ---------------------------------------------------------------- model and state


def build_model(cfg: TrainConfig, num_instances: int) -> LightFieldNetwork | VolumetricField:
    arch = dict(latent_dim=cfg.latent_dim, width=cfg.width, hidden_layers=cfg.hidden_layers,
                cond_width=cfg.cond_width)
    if cfg.weight_rank < 0 or (cfg.weight_rank and cfg.model != "lfn"):
        raise ValueError(f"--weight-rank {cfg.weight_rank}: 0 (FiLM alone) or more, for an LFN")
    if cfg.model == "lfn":
        return LightFieldNetwork(LFNConfig(num_instances=num_instances, frequencies=cfg.frequencies,
                                           weight_rank=cfg.weight_rank, **arch))
    if cfg.model == "volumetric":
        return VolumetricField(VolumetricConfig(num_instances=num_instances, **arch))
    raise ValueError(f"--model {cfg.model!r}: choose lfn or volumetric")


LINEAGE_KEYS = ("steps", "train_seconds", "dataset", "resolution", "date", "device")


@dataclasses.dataclass
class InitializedFrom:
    codes_copied: int
    # the training behind the start, oldest run first: kept in states and the final meta
    started_from: list[dict]


def initialize_from(model, path: str, car_ids: list[str]) -> InitializedFrom:
    """Copy a checkpoint's network weights into `model` and its latent code of each car both know
    (by name); the other cars keep their fresh codes. Also returns the checkpoint's own training
    (steps, time, data, device) after the runs it was itself started from."""
    ckpt = load_checkpoint(path)
    theirs = ckpt.model.config
    lfn = model.kind == "lfn"
    encodes_theirs = lfn and theirs.frequencies == 0 and model.config.frequencies > 0
    changes_theirs = lfn and theirs.weight_rank == 0 and model.config.weight_rank > 0
    if ckpt.model.kind != model.kind or theirs != dataclasses.replace(
            model.config, num_instances=theirs.num_instances,
            **({"frequencies": 0} if encodes_theirs else {}),
            **({"weight_rank": 0} if changes_theirs else {})):
        raise ValueError(f"--init {path}: its architecture {theirs} differs from this "
                         f"run's {model.config}")
    network = {k: v for k, v in ckpt.model.state_dict().items() if not k.startswith("latents")}
    if encodes_theirs:
        network["net.layers.0.weight"] = with_encoding_columns(network["net.layers.0.weight"],
                                                               model.net.layers[0].in_features)
    if changes_theirs:
        network.update(with_weight_change_outputs(network, model.net))
    missing = model.load_state_dict(network, strict=False).missing_keys
    assert missing == ["latents.weight"], missing  # the same architecture: only the table differs
    row = {name: i for i, name in enumerate(ckpt.instance_names)}
    shared = [(i, row[name]) for i, name in enumerate(car_ids) if name in row]
    with torch.no_grad():
        for mine, theirs in shared:
            model.latents.weight[mine] = ckpt.latents[theirs].to(model.latents.weight)
    own = {"checkpoint": Path(path).name, **{k: ckpt.meta.get(k) for k in LINEAGE_KEYS}}
    return InitializedFrom(len(shared), [*ckpt.meta.get("started_from", []), own])


def with_encoding_columns(w_in: torch.Tensor, encoded_inputs: int) -> torch.Tensor:
    """A raw-ray first layer's (W, 6) weight widened to Fourier-encoded rays with zero weights on
    the sines and cosines (they follow the raw coordinates, models/encoding.py): the network starts
    as the checkpoint's, and training gives the new columns their weights."""
    return torch.cat([w_in, w_in.new_zeros(w_in.shape[0], encoded_inputs - w_in.shape[1])], 1)


def with_weight_change_outputs(network: dict[str, torch.Tensor], net: FiLMNetwork) -> dict[str, torch.Tensor]:
    """A FiLM-only conditioning's last layer with outputs added for `net`'s weight changes, at
    their starting values (zero weights, FiLMNetwork.initial_bias: no change yet): the network
    starts as the checkpoint's, and training grows the changes."""
    weight, bias = network["net.conditioning.2.weight"], network["net.conditioning.2.bias"]
    added = net.modulation_width - weight.shape[0]
    return {"net.conditioning.2.weight": torch.cat([weight, weight.new_zeros(added, weight.shape[1])]),
            "net.conditioning.2.bias": torch.cat([bias, net.initial_bias(bias.shape[0]).to(bias)])}


def state_files(out: Path) -> list[Path]:
    """Saved training states, newest first."""
    return sorted(out.glob(STATE_GLOB), reverse=True)


def load_latest_state(out: Path) -> tuple[Path, dict] | None:
    """The newest state that loads and its file; a corrupt newest file is reported and skipped."""
    for path in state_files(out):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "step" in state:
                return path, state
            print(f"skipping {path}: not a training state")
        except Exception as e:  # a torn or corrupt file: fall back to the previous one
            print(f"skipping corrupt state {path}: {' '.join(str(e).split())[:120]}")
    return None


ARCHITECTURE = ("model", "latent_dim", "width", "hidden_layers", "cond_width", "frequencies",
                "weight_rank")


def check_resumable(path: Path, state: dict, cars: CarViews, cfg: TrainConfig) -> None:
    """A state resumes only on the data it was trained on: its latent table has one row per car,
    in the data set's order, and the rays it learned are those of its resolution."""
    saved_cfg = state.get("train_config", {})
    changed = [f"--{k.replace('_', '-')} {saved_cfg[k]} (now {getattr(cfg, k)})"
               for k in ARCHITECTURE if k in saved_cfg and saved_cfg[k] != getattr(cfg, k)]
    if changed:
        raise ValueError(f"{path}: cannot resume, it was trained with {', '.join(changed)}")
    resolution = state.get("resolution")
    if resolution is not None and resolution != cars.resolution:
        raise ValueError(f"{path}: cannot resume, it was trained on {resolution}² px views and "
                         f"{cfg.data} holds {cars.resolution}² px views")
    names = state.get("instance_names")
    if names != cars.ids:
        raise ValueError(f"{path}: cannot resume, its latent table is for {len(names or [])} cars "
                         f"that are not the {len(cars.ids)} training cars of {cfg.data} "
                         "(same data set and --max-cars as the run that wrote it?)")


def save_or_explain(obj, path: Path, out: Path) -> None:
    """atomic_save; a full disk leaves the previous states untouched, and the error says which
    one a --resume will continue from."""
    try:
        atomic_save(obj, path)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        kept = state_files(out)
        last = (f"the last good state {kept[0]} is kept" if kept
                else "no earlier training state exists")
        raise OSError(errno.ENOSPC, f"disk full while writing {path}; {last} "
                      "(free some space and run again with --resume)") from e


def save_state(out: Path, step: int, model, optimizer, seconds: float, cfg: TrainConfig,
               cars: CarViews, skipped_steps: int, started_from: list[dict] | None) -> None:
    state = {
        "step": step,
        "seconds": seconds,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "train_config": dataclasses.asdict(cfg),
        "instance_names": cars.ids,
        "resolution": cars.resolution,
        "skipped_steps": skipped_steps,
        **({"started_from": started_from} if started_from else {}),
    }
    device = cars.rgb.device
    if device.type == "cuda":  # the volumetric model's sample jitter draws from it
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    save_or_explain(state, out / f"state_{step:09d}.pt", out)
    for old in state_files(out)[cfg.keep_states:]:
        old.unlink(missing_ok=True)


def restore_state(state: dict, model, optimizer, device: torch.device) -> None:
    model.load_state_dict(state["model"])
    load_optimizer_state(optimizer, state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


class StopRequest:
    """SIGTERM (a call's time limit, a scheduler) asks the loop to stop; it saves a state first.

    Installed while train() runs, in the main thread only (Python delivers signals there)."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self.handle)
        return self

    def handle(self, signum, frame) -> None:
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


# ---------------------------------------------------------------- evaluation during training


@torch.no_grad()
def heldout_psnr(model, cars: CarViews, first: int, count: int, views: int) -> float:
    """Mean PSNR over held-out (test) views of `count` training cars, whole images."""
    test_views = torch.nonzero(~cars.train_view).flatten()[:views]
    res = cars.resolution
    rows, cols = torch.meshgrid(
        torch.arange(res, device=cars.rgb.device), torch.arange(res, device=cars.rgb.device),
        indexing="ij",
    )
    was_training = model.training
    model.eval()
    scores = []
    for car in range(first, min(first + count, cars.rgb.shape[0])):
        latent = model.latents.weight[car][None]
        for view in test_views:
            o, d = rays_through_pixels(cars.cam2world[car, view], cars.intrinsics,
                                       cols.float(), rows.float())
            color = torch.cat([
                model(o.reshape(1, -1, 3)[:, i:i + 8192],
                                 d.reshape(1, -1, 3)[:, i:i + 8192], latent)
                for i in range(0, res * res, 8192)
            ], dim=1).view(res, res, 3)
            target = cars.rgb[car, view].float() / 255
            scores.append(psnr(color, target))
    model.train(was_training)
    return sum(scores) / len(scores)


# ---------------------------------------------------------------- the loop


def learning_rate_scale(cfg: TrainConfig, step: int, seconds: float) -> float:
    """Exponential decay from 1 to final_lr_fraction over the step or time budget."""
    progress = budget_progress(step, seconds, cfg.step_budget, cfg.minutes)
    return cfg.final_lr_fraction ** min(progress, 1.0)


def train(cfg: TrainConfig) -> Path:
    with StopRequest() as stop:
        return train_until_stopped(cfg, stop)


def train_until_stopped(cfg: TrainConfig, stop: StopRequest) -> Path:
    env = setup_distributed(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if env.main:  # a kill during a save leaves its temp file behind; it was never a state
        for stale in out.glob(".state_*.tmp"):
            stale.unlink(missing_ok=True)
    cars = load_cars(cfg.data, "train", limit=cfg.max_cars).to(env.device)
    num_cars = cars.rgb.shape[0]
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, num_cars).to(env.device)
    started_from = None
    if cfg.init:
        init = initialize_from(model, cfg.init, cars.ids)
        started_from = init.started_from
        if env.main:
            print(f"initialized from {cfg.init}: network and {init.codes_copied} of {num_cars} "
                  "latent codes")
    train_views = torch.nonzero(cars.train_view).flatten().to(env.device)
    geometry = None
    if cfg.geometry_weight < 0:
        raise ValueError(f"--geometry-weight {cfg.geometry_weight}: 0 (off) or more")
    if cfg.geometry_weight > 0:
        if cfg.geometry_rays < 1:
            raise ValueError(f"--geometry-rays {cfg.geometry_rays}: at least 1")
        geometry = ReprojectionLoss(cars, train_views, GeometryConfig(
            cfg.geometry_weight, min(cfg.geometry_rays, cfg.rays_per_object),
            cfg.geometry_neighbours))
    wrap = None
    if env.world > 1:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        wrap = lambda forward: torch.nn.parallel.DistributedDataParallel(  # noqa: E731
            forward, device_ids=device_ids)
    step_fn = make_training_step(model, cfg.step_impl, cfg.lr, cfg.latent_lr, cfg.latent_weight,
                                 env.device, wrap, cfg.compile, geometry=geometry,
                                 latent_noise=cfg.latent_noise)
    step, seconds = 0, 0.0
    if cfg.resume and (saved := load_latest_state(out)) is not None:
        path, state = saved
        check_resumable(path, state, cars, cfg)
        restore_state(state, model, step_fn.optimizer, env.device)
        step, seconds = state["step"], state["seconds"]
        step_fn.skipped += state.get("skipped_steps", 0)
        if cfg.init is None:  # where the weights started stays on record in later states and meta
            cfg = dataclasses.replace(cfg, init=state.get("train_config", {}).get("init"))
        started_from = state.get("started_from", started_from)
        if env.main:
            print(f"resumed from step {step} ({seconds / 60:.1f} min trained)")
    drawn = torch.zeros(num_cars, dtype=torch.bool, device=env.device)  # cars this rank has drawn
    generator = torch.Generator(device=env.device)
    log = (out / "log.jsonl").open("a") if env.main else None
    bar = tqdm(total=cfg.step_budget, initial=step, disable=not env.main, dynamic_ncols=True)
    rays_per_step = cfg.objects_per_step * cfg.rays_per_object * env.world
    window_start, window_steps = time.perf_counter(), 0
    local_seconds = window_clock = seconds  # this rank's clock; the clock all ranks agreed on
    replicas: dict = {}  # the latest replica check (several GPUs only)
    call_start, call_first_step, call_wall = time.perf_counter(), step, 0.0
    terminated, skipped_logged = False, int(step_fn.skipped)

    def out_of_budget() -> bool:
        return bool(cfg.step_budget and step >= cfg.step_budget) or bool(
            cfg.minutes and seconds >= 60 * cfg.minutes)

    def finishing() -> bool:
        """The run's budget is spent, this call's is, or a SIGTERM came (all ranks agree)."""
        call_over = bool(cfg.call_steps and step - call_first_step >= cfg.call_steps) or bool(
            cfg.call_minutes and call_wall >= 60 * cfg.call_minutes)
        return out_of_budget() or call_over or terminated

    while not finishing():
        tick = time.perf_counter()
        # Re-seeding from (seed, rank, step) makes the ray draws identical after a resume.
        generator.manual_seed(cfg.seed * 1_000_003 + env.rank * 7_919 + step)
        batch = draw_batch(cars, train_views, cfg.objects_per_step, cfg.rays_per_object,
                           generator, cfg.step_impl)
        drawn[batch.objects] = True
        scale = learning_rate_scale(cfg, step, window_clock)
        result = step_fn(batch, scale)
        step += 1
        window_steps += 1
        bar.update(1)
        if env.world == 1:  # one process stops at the next step; ranks agree at a window's end
            terminated = stop.requested
        window_end = finishing() or any(
            step % every == 0 for every in (cfg.log_every, cfg.eval_every, cfg.save_every))
        if env.device.type == "cuda" and window_end:
            torch.cuda.synchronize(env.device)
        local_seconds += time.perf_counter() - tick
        if not window_end:
            continue
        # The lr decay and the time budget read the clock, so every rank must read the same
        # one: different rates would let the replicas drift and different last steps would hang
        # the collectives. At each window's end all ranks adopt rank 0's training time.
        seconds = local_seconds = env.rank0_value(local_seconds)
        window_clock = seconds
        if cfg.call_minutes:
            call_wall = env.rank0_value(time.perf_counter() - call_start)
        terminated = env.any_rank(stop.requested)
        skipped = int(step_fn.skipped)
        if env.main:
            rate = window_steps * rays_per_step / (time.perf_counter() - window_start)
            mse = result.mse.item()
            record = {"step": step, "seconds": round(seconds, 2), "loss": result.loss.item(),
                      "psnr": psnr_from_mse(mse), "rays_per_s": round(rate),
                      "lr_scale": round(scale, 4), "world": env.world, "skipped_steps": skipped}
            if result.geometry is not None:
                record["geometry"] = result.geometry.item()
            bar.set_postfix(loss=f"{record['loss']:.4f}", psnr=f"{record['psnr']:.2f}")
            log.write(json.dumps(record) + "\n")
            log.flush()
            if skipped > skipped_logged:
                tqdm.write(f"step {step}: skipped {skipped - skipped_logged} step(s) whose "
                           f"gradients were not finite ({skipped} in all)")
        skipped_logged = skipped
        if step % cfg.eval_every == 0 and env.main:
            psnr = heldout_psnr(model, cars, 0, cfg.eval_cars, cfg.eval_views)
            log.write(json.dumps({"step": step, "seconds": round(seconds, 2),
                                  "heldout_psnr": psnr}) + "\n")
            log.flush()
            tqdm.write(f"step {step}: held-out-view PSNR {psnr:.2f} dB")
        if env.world > 1 and (step % cfg.eval_every == 0 or finishing()):
            replicas = replica_check(model, drawn)  # a collective: every rank takes part
            if env.main:
                log.write(json.dumps({"step": step, **replicas}) + "\n")
                log.flush()
        if (step % cfg.save_every == 0 or finishing()) and env.main:
            save_state(out, step, model, step_fn.optimizer, seconds, cfg, cars, skipped,
                       started_from)
        window_start, window_steps = time.perf_counter(), 0  # evaluation and saving excluded
    bar.close()
    final = out / "model.pt"
    if env.main:
        meta = {"steps": step, "dataset": str(cfg.data), "train_seconds": round(seconds, 1),
                "resolution": cars.resolution,
                "world_size": env.world, "date": dt.date.today().isoformat(),
                "device": torch.cuda.get_device_name(env.device) if env.device.type == "cuda"
                else "cpu", "train_config": dataclasses.asdict(cfg), "metrics": {},
                **({"replicas": replicas} if replicas else {}),
                **({"started_from": started_from} if started_from else {})}
        save_or_explain(checkpoint_dict(model, cars.ids, meta), final, out)
        print(("stopped by SIGTERM; " if terminated else "")
              + f"wrote {final} after {step} steps, {seconds / 60:.1f} min"
              + ("" if out_of_budget() else "; --resume continues"))
    if env.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    options = vars(config_parser(TrainConfig, __doc__.split("\n\n")[0]).parse_args(argv))
    del options["debug"]  # the entry-point contract's flag (main below), not a training setting
    return TrainConfig(**options)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    return run_entry_point(lambda: train(config), debug_requested(argv))


if __name__ == "__main__":
    sys.exit(main())
