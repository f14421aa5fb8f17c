"""Which latent code the viewer shows: a table entry, a blend of two, a random draw, or a fitted code.

A selection is a small frozen dataclass: hashable and compared per frame (a frame request holds
one), resolved to a code and a label by the LatentBank of the checkpoint it names codes of.

A car fitted past its latent (models/modulation_fit.py) also has a modulation offset; a mix of
table rows mixes their offsets with the same weights (a row without one counts as zero).

A random latent comes from a Gaussian fitted to the latent table (mean and full covariance), so it
looks like the codes the network was trained on. With fewer instances than latent dimensions the
covariance is singular; a small diagonal jitter makes its Cholesky factor exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from models.checkpoint import Checkpoint


@dataclass(frozen=True)
class InstanceLatent:
    """Row `index` of the latent table."""

    index: int


@dataclass(frozen=True)
class BlendLatent:
    """lerp(table[a], table[b], t)."""

    a: int
    b: int
    t: float


@dataclass(frozen=True)
class RandomLatent:
    """Draw `seed` from the Gaussian fitted to the table: the same seed gives the same code."""

    seed: int


@dataclass(frozen=True)
class FittedLatent:
    """lerp(fitted, table[target], t), where `fitted` is the newest code a fit published.

    `serial` grows with each published code, so every new code is a new selection (and a new frame
    request); `label` names the fitted photo.
    """

    serial: int
    label: str
    target: int
    t: float


@dataclass(frozen=True)
class WeightedLatent:
    """Σ weight · table[index] over (index, weight) pairs: a camera path's code between keyframes
    (engine/camera_path.py), which may blend more than two instances."""

    weights: tuple[tuple[int, float], ...]


LatentSelection = InstanceLatent | BlendLatent | RandomLatent | FittedLatent | WeightedLatent


def has_volumetric_twin(selection: LatentSelection) -> bool:
    """Whether the volumetric baseline can have this code too: a code of table rows can (where it
    holds those cars, VolumetricTwins), a random draw or fitted code never."""
    return isinstance(selection, InstanceLatent | BlendLatent | WeightedLatent)


def table_rows(selection: LatentSelection) -> tuple[int, ...]:
    """The table rows a code of table rows mixes (none for a random draw or fitted code)."""
    match selection:
        case InstanceLatent(index):
            return (index,)
        case BlendLatent(a, b, _):
            return (a, b)
        case WeightedLatent(weights):
            return tuple(index for index, _ in weights)
    return ()


class VolumetricTwins:
    """The LFN's table codes in the volumetric baseline's table, matched by car name: the two
    checkpoints may hold different cars, in different orders."""

    def __init__(self, names: list[str], volumetric_names: list[str]):
        self.names = names  # the LFN's
        self.rows = {name: row for row, name in enumerate(volumetric_names)}

    def row(self, index: int) -> int | None:
        """The baseline's row of the LFN's instance `index`, or None where it lacks that car."""
        return self.rows.get(self.names[index])

    def shared(self) -> int:
        """How many of the LFN's cars the baseline holds."""
        return sum(name in self.rows for name in self.names)

    def missing(self, selection: LatentSelection) -> list[str]:
        """The cars `selection` mixes that the baseline lacks, by name."""
        indices = dict.fromkeys(table_rows(selection))  # a blend of a car with itself names it once
        return [self.names[index] for index in indices if self.row(index) is None]

    def twin(self, selection: LatentSelection) -> LatentSelection | None:
        """`selection` in the baseline's rows, or None where it has no twin: a random draw, a
        fitted code, or a mix of a car the baseline lacks."""
        if self.missing(selection):
            return None
        match selection:
            case InstanceLatent(index):
                return InstanceLatent(self.row(index))
            case BlendLatent(a, b, t):
                return BlendLatent(self.row(a), self.row(b), t)
            case WeightedLatent(weights):
                return WeightedLatent(tuple((self.row(index), weight) for index, weight in weights))
        return None  # a random draw or fitted code


def cholesky_with_jitter(cov: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a covariance, adding the smallest jitter (×10 steps) that works."""
    scale = max(float(cov.diagonal().mean()), 1e-12)
    eye = torch.eye(cov.shape[0], dtype=cov.dtype)
    jitter = 0.0
    for _ in range(12):
        factor, info = torch.linalg.cholesky_ex(cov + jitter * eye)
        if info == 0:
            return factor
        jitter = 1e-6 * scale if jitter == 0.0 else jitter * 10
    raise ValueError("latent covariance is not positive definite even with jitter")


class LatentGaussian:
    """N(mean, cov) of the rows of a latent table, sampled as mean + L z with L L^T = cov."""

    def __init__(self, table: torch.Tensor):
        table = table.detach().double().cpu()
        self.mean = table.mean(0)
        centered = table - self.mean
        cov = centered.T @ centered / max(table.shape[0] - 1, 1)
        self.chol = cholesky_with_jitter(cov)

    def sample(self, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(self.mean.shape[0], generator=generator, dtype=torch.float64)
        return (self.mean + self.chol @ z).float()


class LatentBank:
    """The latent table of one checkpoint, its rows' modulation offsets (Checkpoint.
    modulation_offsets), and the codes derived from them, by LatentSelection.

    `fitted` is the code a FittedLatent starts from: the table's mean until a fit publishes one.
    """

    def __init__(self, table: torch.Tensor, names: list[str],
                 modulation_offsets: dict[int, torch.Tensor] | None = None):
        self.table = table.detach().float().cpu()
        self.names = names
        self.offsets = {row: offset.detach().float().cpu()
                        for row, offset in (modulation_offsets or {}).items()}
        self.gaussian = LatentGaussian(self.table)
        self.fitted = self.table.mean(0)  # where every fit starts
        self.fitted_offset: torch.Tensor | None = None

    @classmethod
    def of_checkpoint(cls, ckpt: Checkpoint) -> LatentBank:
        return cls(ckpt.latents, ckpt.instance_names, ckpt.modulation_offsets)

    def publish(self, latent: torch.Tensor, modulation_offset: torch.Tensor | None = None) -> None:
        """Make `latent` (and its offset) the fitted code (called by the UI thread while the
        render thread reads)."""
        offset = None if modulation_offset is None else modulation_offset.detach().float().cpu()
        # one reference swap: safe for the render thread
        self.fitted, self.fitted_offset = latent.detach().float().cpu(), offset

    def latent(self, selection: LatentSelection) -> torch.Tensor:
        match selection:
            case InstanceLatent(index):
                return self.table[index]
            case BlendLatent(a, b, t):
                return torch.lerp(self.table[a], self.table[b], t)
            case RandomLatent(seed):
                return self.gaussian.sample(seed)
            case FittedLatent(target=target, t=t):
                # the newest code, whatever the serial: a render that asks for an older one gets
                # the newest, which is what the user wants
                return torch.lerp(self.fitted, self.table[target], t)
            case WeightedLatent(weights):
                return sum(weight * self.table[index] for index, weight in weights)
        raise TypeError(f"not a latent selection: {selection!r}")

    def offset(self, selection: LatentSelection) -> torch.Tensor | None:
        """The modulation offset of the selected code, or None where it mixes none."""
        match selection:
            case InstanceLatent(index):
                return self.offsets.get(index)
            case BlendLatent(a, b, t):
                return self._mix([(self.offsets.get(a), 1 - t), (self.offsets.get(b), t)])
            case FittedLatent(target=target, t=t):
                return self._mix([(self.fitted_offset, 1 - t), (self.offsets.get(target), t)])
            case WeightedLatent(weights):
                return self._mix([(self.offsets.get(index), weight) for index, weight in weights])
        return None

    @staticmethod
    def _mix(weighted: list[tuple[torch.Tensor | None, float]]) -> torch.Tensor | None:
        present = [(offset, weight) for offset, weight in weighted if offset is not None]
        return sum(weight * offset for offset, weight in present) if present else None

    def label(self, selection: LatentSelection) -> str:
        match selection:
            case InstanceLatent(index):
                return self.names[index]
            case BlendLatent(a, b, t):
                return f"{self.names[a]}->{self.names[b]} t={t:.2f}"
            case RandomLatent(seed):
                return f"random #{seed}"
            case FittedLatent(label=label, target=target, t=t):
                return f"{label}->{self.names[target]} t={t:.2f}" if t > 0 else label
            case WeightedLatent(weights):
                return " + ".join(f"{weight:.2f} {self.names[index]}" for index, weight in weights)
        raise TypeError(f"not a latent selection: {selection!r}")
