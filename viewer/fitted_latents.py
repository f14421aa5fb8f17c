"""The fitted latent among the checkpoint's codes: its LatentKey, its nearest training instances,
and interpolation from it toward any instance.

A key ("fitted", serial, label, b, t) shows lerp(fitted, table[b], t). `serial` grows with each
code the fit publishes, so every new code is a new frame request; the bank keeps only the newest
code (a render that asks for an older serial gets the newest, which is what the user wants).
"""

from __future__ import annotations

import torch

from engine.frame import FrameRenderer
from engine.latents import LatentBank, LatentKey


class FittedLatentBank(LatentBank):
    def __init__(self, table: torch.Tensor, names: list[str]):
        super().__init__(table, names)
        self.fitted = self.table.mean(0)  # where every fit starts

    def publish(self, latent: torch.Tensor) -> None:
        self.fitted = latent.detach().float().cpu()  # one reference swap: safe for the render thread

    def latent(self, key: LatentKey) -> torch.Tensor:
        if key[0] == "fitted":
            _, _, _, b, t = key
            return torch.lerp(self.fitted, self.table[b], t)
        return super().latent(key)

    def label(self, key: LatentKey) -> str:
        if key[0] == "fitted":
            _, _, label, b, t = key
            return f"{label}->{self.names[b]} t={t:.2f}" if t > 0 else label
        return super().label(key)

    def nearest(self, latent: torch.Tensor, k: int = 5) -> list[tuple[int, float]]:
        """The k training instances closest to `latent` (L2 in latent space), nearest first."""
        distances = (self.table - latent.detach().float().cpu()).norm(dim=1)
        values, indices = distances.topk(min(k, len(distances)), largest=False)
        return list(zip(indices.tolist(), values.tolist(), strict=True))

    def typical_spacing(self) -> float:
        """Median distance from a training code to its nearest other code: a scale for `nearest`."""
        distances = torch.cdist(self.table, self.table)
        distances.fill_diagonal_(float("inf"))
        return float(distances.min(1).values.median()) if len(self.table) > 1 else 0.0


class FittedFrameRenderer(FrameRenderer):
    """A fitted code has no volumetric twin: compare frames show the LFN alone, as for random codes."""

    def has_reference(self, key: LatentKey) -> bool:
        return key[0] != "fitted" and super().has_reference(key)
