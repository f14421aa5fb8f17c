"""models/depth.py's edge-aware pooled solve as one Triton kernel (CUDA), instead of ~8 torch passes.

Each pixel sums its window × window neighbours' equations Σ a·b and Σ a², each weighted by its
color similarity exp(−‖c_n − c‖² / 2σ²), with the frame's border replicated, and writes
z = Σ w·(a·b) / Σ w·a² and the confidence Σ w·a²: exactly solve_depth's torch path, which stays
the reference (tests compare the two in Triton's CPU interpreter).

Like models/triton_lfn.py, importing this module never needs triton; the kernel is decorated on
first use.
"""

from __future__ import annotations

import functools

import torch

from models.resolution import Resolution

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs: solve_depth keeps its torch path
    triton = tl = None

BLOCK = 256  # pixels per program
INTERPRETER_BLOCK = 64


def pool_available() -> bool:
    """Whether triton is installed (solve_depth pools with the kernel on CUDA tensors then; tests
    call pooled_solve on CPU tensors under TRITON_INTERPRET=1)."""
    return triton is not None


def _pool_kernel(
    eq_ptr, depth_ptr, confidence_ptr, width, height, inv_two_sigma2,
    WINDOW: tl.constexpr, BLOCK: tl.constexpr,
):
    pixel = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = pixel < width * height
    row, col = pixel // width, pixel % width
    red = tl.load(eq_ptr + pixel * 5 + 0, mask=inside, other=0.0)
    green = tl.load(eq_ptr + pixel * 5 + 1, mask=inside, other=0.0)
    blue = tl.load(eq_ptr + pixel * 5 + 2, mask=inside, other=0.0)
    ab = tl.zeros((BLOCK,), tl.float32)
    aa = tl.zeros((BLOCK,), tl.float32)
    for dy in tl.static_range(WINDOW):
        for dx in tl.static_range(WINDOW):
            # Replicated border: a neighbour outside the frame is the nearest pixel inside it.
            y = tl.minimum(tl.maximum(row + dy - WINDOW // 2, 0), height - 1)
            x = tl.minimum(tl.maximum(col + dx - WINDOW // 2, 0), width - 1)
            at = eq_ptr + (y * width + x) * 5
            dr = tl.load(at + 0, mask=inside, other=0.0) - red
            dg = tl.load(at + 1, mask=inside, other=0.0) - green
            db = tl.load(at + 2, mask=inside, other=0.0) - blue
            weight = tl.exp(-(dr * dr + dg * dg + db * db) * inv_two_sigma2)
            ab += weight * tl.load(at + 3, mask=inside, other=0.0)
            aa += weight * tl.load(at + 4, mask=inside, other=0.0)
    tl.store(depth_ptr + pixel, ab / tl.maximum(aa, 1e-12), mask=inside)
    tl.store(confidence_ptr + pixel, aa, mask=inside)


@functools.cache
def _kernel(interpret: bool):
    kernel = triton.jit(_pool_kernel, do_not_specialize=["width", "height"])
    return kernel, INTERPRETER_BLOCK if interpret else BLOCK


def pooled_solve(equations: torch.Tensor, res: Resolution | int, window: int,
                 color_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(depth, confidence), each (H, W) float32, from (W*H, 5) float32 rows r, g, b, Σ a·b, Σ a²,
    contiguous, rows of the frame top to bottom."""
    res = Resolution.of(res)
    depth = torch.empty(res.height, res.width, dtype=torch.float32, device=equations.device)
    confidence = torch.empty_like(depth)
    kernel, block = _kernel(bool(triton.knobs.runtime.interpret))
    kernel[(triton.cdiv(res.pixels, block),)](
        equations, depth, confidence, res.width, res.height, 1.0 / (2.0 * color_sigma**2),
        WINDOW=window, BLOCK=block,
    )
    return depth, confidence
