"""Which latent code the viewer shows: a table entry, a blend of two, or a random draw.

A random latent comes from a Gaussian fitted to the latent table (mean and full covariance), so it
looks like the codes the network was trained on. With fewer instances than latent dimensions the
covariance is singular; a small diagonal jitter makes its Cholesky factor exist.
"""

from __future__ import annotations

import torch

LatentKey = tuple  # ("instance", i) | ("mix", a, b, t) | ("random", seed): hashable, compared per frame


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
    """The latent table of one checkpoint and the codes derived from it, by LatentKey."""

    def __init__(self, table: torch.Tensor, names: list[str]):
        self.table = table.detach().float().cpu()
        self.names = names
        self.gaussian = LatentGaussian(self.table)

    def latent(self, key: LatentKey) -> torch.Tensor:
        kind = key[0]
        if kind == "instance":
            return self.table[key[1]]
        if kind == "mix":
            _, a, b, t = key
            return torch.lerp(self.table[a], self.table[b], t)
        return self.gaussian.sample(key[1])  # seeded: the same key gives the same code

    def label(self, key: LatentKey) -> str:
        kind = key[0]
        if kind == "instance":
            return self.names[key[1]]
        if kind == "mix":
            _, a, b, t = key
            return f"{self.names[a]}->{self.names[b]} t={t:.2f}"
        return f"random #{key[1]}"
