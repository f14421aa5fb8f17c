"""The per-ray (or per-sample) MLP once a latent is folded in: plain ReLU layers on tensors.

A FiLM-conditioned layer, relu(gamma * (W x + b) + beta), equals relu(W' x + b') with
W' = gamma[:, None] * W and b' = gamma * b + beta. So for a fixed latent the conditioned network
is an ordinary MLP whose weights are tensors, and one traced function serves every latent.
"""

from __future__ import annotations

import torch


def mlp_forward(
    x: torch.Tensor,
    w_in: torch.Tensor,
    b_in: torch.Tensor,
    w_hidden: torch.Tensor,
    b_hidden: torch.Tensor,
    w_out: torch.Tensor,
    b_out: torch.Tensor,
) -> torch.Tensor:
    """(N, in) → (N, out): relu(x W_in^T + b_in), then hidden relu layers, then a linear output.

    Shapes: w_in (W, in), b_in (W,), w_hidden (L-1, W, W), b_hidden (L-1, W), w_out (out, W).
    """
    h = torch.relu(torch.addmm(b_in, x, w_in.t()))
    for layer in range(w_hidden.shape[0]):
        h = torch.relu(torch.addmm(b_hidden[layer], h, w_hidden[layer].t()))
    return torch.addmm(b_out, h, w_out.t())
