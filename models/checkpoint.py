"""The checkpoint format: one `.pt` file, loaded with weights_only=True so it can run no code.

Contents (plain dicts, lists, strings, numbers and tensors only):
    format        "lfn-viewer-checkpoint"
    version       FORMAT_VERSION
    kind          "lfn" or "volumetric"
    config        the architecture's dataclass fields
    state_dict    network weights (without the latent table): float32, or float16 where the
                  file would otherwise pass the size limit (WEIGHT_DTYPES; the latents stay float32)
    latents       (num_instances, latent_dim) float32, one code per object
    instance_names
    meta          {"steps": int, "dataset": str, "metrics": {...}, ...}
Optional (an LFN with cars fitted past their latents, models/modulation_fit.py; a reader that
ignores it shows those cars as their latents):
    modulation_offsets  {"rows": [int, ...], "offsets": (len(rows), net.modulation_width)}:
                  the FiLM modulations each listed instance adds to its latent's
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from models.lfn import LFNConfig, LightFieldNetwork
from models.volumetric import VolumetricConfig, VolumetricField

FORMAT_NAME = "lfn-viewer-checkpoint"
FORMAT_VERSION = 1
MODEL_KINDS = {"lfn": (LFNConfig, LightFieldNetwork), "volumetric": (VolumetricConfig, VolumetricField)}
REQUIRED_KEYS = ("format", "version", "kind", "config", "state_dict", "latents", "instance_names", "meta")
# How a file may store the network's weights. Loading widens them to float32, so a float16 file
# holds exactly the weights it renders with, and saving a loaded one again loses nothing.
WEIGHT_DTYPES = {"float32": torch.float32, "float16": torch.float16}

Model = LightFieldNetwork | VolumetricField


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"checkpoint {path}: {problem}")


@dataclasses.dataclass
class Checkpoint:
    model: Model
    instance_names: list[str]
    meta: dict[str, Any]
    # instance → the FiLM modulations it adds to its latent's; most instances have none
    modulation_offsets: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)
    weights_dtype: torch.dtype = torch.float32  # how the file stores them; a re-save keeps it

    @property
    def latents(self) -> torch.Tensor:
        return self.model.latents.weight

    def resolve_instance(self, index: int) -> int:
        """Python-style index (negative counts from the end) → 0..n-1, or IndexError."""
        n = len(self.instance_names)
        if not -n <= index < n:
            raise IndexError(f"{index} is out of range: this checkpoint has {n} instances")
        return index % n

    def save(self, path: str | os.PathLike) -> None:
        """Write it as it was loaded: the same weight storage, its offsets kept."""
        save_checkpoint(self.model, self.instance_names, self.meta, path, self.modulation_offsets,
                        self.weights_dtype)

    def instance_code(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Instance `index`'s latent and modulation offset (None: the latent alone), as
        Renderer.set_latent takes them."""
        return self.latents[index], self.modulation_offsets.get(index)


def require_weight_dtype(dtype: torch.dtype) -> None:
    """A file's weights are stored in one of WEIGHT_DTYPES (checkpoints and encoders alike)."""
    if dtype not in WEIGHT_DTYPES.values():
        raise ValueError(f"weights are stored as {', '.join(WEIGHT_DTYPES)}, not {dtype}")


def checkpoint_dict(model: Model, instance_names: list[str], meta: dict[str, Any],
                    modulation_offsets: dict[int, torch.Tensor] | None = None,
                    weights_dtype: torch.dtype = torch.float32) -> dict:
    require_weight_dtype(weights_dtype)
    state = {k: v.detach().cpu().to(weights_dtype) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items() if k != "latents.weight"}
    extra = {}
    if modulation_offsets:
        rows = sorted(modulation_offsets)
        extra["modulation_offsets"] = {
            "rows": rows,
            "offsets": torch.stack([modulation_offsets[r].detach().cpu().float() for r in rows])}
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": model.kind,
        "config": dataclasses.asdict(model.config),
        "state_dict": state,
        "latents": model.latents.weight.detach().cpu().float().clone(),
        "instance_names": list(instance_names),
        "meta": meta,
        **extra,
    }


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    model: Model, instance_names: list[str], meta: dict[str, Any], path: str | os.PathLike,
    modulation_offsets: dict[int, torch.Tensor] | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> None:
    atomic_save(checkpoint_dict(model, instance_names, meta, modulation_offsets, weights_dtype),
                path)


def read_torch_file(path: str | os.PathLike) -> Any:
    """torch.load with weights_only=True, turning every failure into a CheckpointError."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(path, "no such file")
    if p.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    if p.stat().st_size == 0:
        raise CheckpointError(path, "is empty")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(
                path, "refused: it holds Python objects beyond tensors and plain data "
                "(weights-only loading blocks code in pickles)"
            ) from e
        raise CheckpointError(path, "not a torch checkpoint (cannot unpickle)") from e
    except Exception as e:  # torch.load raises many types on junk (struct.error on tiny files, …)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"not a readable torch file (truncated or corrupt?): {first}") from e


def parse_checkpoint(data: Any, path: str | os.PathLike) -> Checkpoint:
    """Validate a loaded dict and build the model; every problem is a CheckpointError."""
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(path, "is a torch file but not an LFN viewer checkpoint")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(path, f"missing keys: {', '.join(missing)}")
    if data["version"] != FORMAT_VERSION:
        raise CheckpointError(
            path, f"format version {data['version']!r} is not supported (expected {FORMAT_VERSION})"
        )
    if data["kind"] not in MODEL_KINDS:
        raise CheckpointError(path, f"unknown model kind {data['kind']!r}")
    config_cls, model_cls = MODEL_KINDS[data["kind"]]
    try:
        config = config_cls(**data["config"])
    except TypeError as e:
        raise CheckpointError(path, f"bad config: {e}") from e
    latents, names = data["latents"], data["instance_names"]
    if not isinstance(latents, torch.Tensor) or latents.shape != (config.num_instances, config.latent_dim):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise CheckpointError(
            path, f"latent table has shape {shape}, config says "
            f"({config.num_instances}, {config.latent_dim})"
        )
    if not isinstance(names, list) or len(names) != config.num_instances:
        raise CheckpointError(path, "instance_names does not list one name per latent")
    model = model_cls(config)
    weights_dtype = stored_weights_dtype(data["state_dict"], path)
    state = dict(data["state_dict"], **{"latents.weight": latents})
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = " ".join(str(e).split())[:200]
        raise CheckpointError(path, f"weights do not match the config: {detail}") from e
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise CheckpointError(path, "holds NaN or infinite weights")
    model.eval()
    offsets = parse_modulation_offsets(data.get("modulation_offsets"), model, path)
    return Checkpoint(model, [str(n) for n in names], dict(data["meta"]), offsets, weights_dtype)


def stored_weights_dtype(state: Any, path: str | os.PathLike) -> torch.dtype:
    """The one floating dtype of a state_dict's weights (WEIGHT_DTYPES), or a CheckpointError."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(path, "state_dict is not a table of tensors")
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    if len(dtypes) > 1 or not dtypes <= set(WEIGHT_DTYPES.values()):
        names = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise CheckpointError(path, f"weights stored as {names}: expected one of "
                              f"{', '.join(WEIGHT_DTYPES)}")
    return dtypes.pop() if dtypes else torch.float32


def parse_modulation_offsets(data: Any, model: Model, path: str | os.PathLike) -> dict[int, torch.Tensor]:
    """The optional modulation offsets, checked against the model; CheckpointError if malformed."""
    if data is None:
        return {}
    if model.kind != "lfn":
        raise CheckpointError(path, "a volumetric checkpoint cannot hold modulation offsets")
    width = model.net.modulation_width
    rows, offsets = (data.get("rows"), data.get("offsets")) if isinstance(data, dict) else (None, None)
    if not (isinstance(rows, list) and all(isinstance(r, int) for r in rows)
            and isinstance(offsets, torch.Tensor) and offsets.shape == (len(rows), width)):
        raise CheckpointError(path, f"modulation_offsets is not rows and a (rows, {width}) table")
    if len(set(rows)) != len(rows) or not all(0 <= r < model.config.num_instances for r in rows):
        raise CheckpointError(path, "modulation_offsets names instances it does not hold")
    if not torch.isfinite(offsets).all():
        raise CheckpointError(path, "holds NaN or infinite modulation offsets")
    return {row: offsets[i].float() for i, row in enumerate(rows)}


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    return parse_checkpoint(read_torch_file(path), path)
