"""The per-ray (or per-sample) MLP once a latent is folded in: plain ReLU layers on tensors.

A FiLM-conditioned layer, relu(gamma * (W x + b) + beta), equals relu(W' x + b') with
W' = gamma[:, None] * W and b' = gamma * b + beta. So for a fixed latent the conditioned network
is an ordinary MLP whose weights are tensors, and one traced function serves every latent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# On a CPU, oneDNN multiplies bf16 and fp16 and keeps state for every row count it has multiplied
# for the life of the process: 0.29 MB a count even with its primitive cache off, and 800 counts
# of a 256-wide layer grew the process by 613 MB with it on (PERF.md, "bf16's memory on a CPU").
# A march's rounds and a window's frame sizes bring new counts all the time, so a CPU evaluation in
# those dtypes pads its rows up to one of ROW_BUCKETS_PER_OCTAVE counts between two powers of two
# (at least MIN_ROW_BUCKET apart): ≤ 12.5 % more rows, and 80 counts serve every size up to 2^18.
ROW_BUCKETS_PER_OCTAVE = 8
MIN_ROW_BUCKET = 64
ONEDNN_DTYPES = (torch.bfloat16, torch.float16)


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


def row_bucket(n: int) -> int:
    """The row count `n` rows are padded to: the next multiple of an eighth of the power of two at
    or below n, and at least of MIN_ROW_BUCKET: at most 12.5 % or MIN_ROW_BUCKET - 1 rows more."""
    step = max(MIN_ROW_BUCKET, (1 << max(n.bit_length() - 1, 0)) // ROW_BUCKETS_PER_OCTAVE)
    return -(-n // step) * step


def in_row_buckets(evaluate: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   dtype: torch.dtype) -> torch.Tensor:
    """evaluate(x) for the N rows of x (its first dimension: inputs, or indices of them), by a
    network whose operands are `dtype`: on a CPU in bf16 or fp16 with N padded (zeros) to
    row_bucket(N), the padding's outputs dropped. Each row's result is the same either way (rows
    are multiplied independently)."""
    n = x.shape[0]
    if x.device.type != "cpu" or dtype not in ONEDNN_DTYPES or row_bucket(n) == n:
        return evaluate(x)
    return evaluate(torch.cat([x, x.new_zeros(row_bucket(n) - n, *x.shape[1:])]))[:n]
