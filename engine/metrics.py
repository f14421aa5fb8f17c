"""Image quality metrics: PSNR and SSIM (Gaussian window, as in Wang et al. 2004)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(image: torch.Tensor, target: torch.Tensor) -> float:
    """Images in [0, 1], any matching shape."""
    mse = float(((image.float() - target.float()) ** 2).mean())
    return float("inf") if mse == 0 else -10.0 * torch.log10(torch.tensor(mse)).item()


def _gaussian_window(size: int, sigma: float, device) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(image: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of two (H, W, 3) images in [0, 1], per channel, valid-region (no padding)."""
    x = image.float().permute(2, 0, 1)[:, None]
    y = target.float().permute(2, 0, 1)[:, None]
    w = _gaussian_window(window, sigma, x.device)
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    var_x = F.conv2d(x * x, w) - mu_x**2
    var_y = F.conv2d(y * y, w) - mu_y**2
    cov = F.conv2d(x * y, w) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(s.mean())
