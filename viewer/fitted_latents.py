"""The fitted latent among the checkpoint's codes: its nearest training instances, and a scale to
judge their distances by. (A FittedLatent selection resolves in engine/latents.py's LatentBank.)
"""

from __future__ import annotations

import torch

from engine.latents import LatentBank


class FittedLatentBank(LatentBank):
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
