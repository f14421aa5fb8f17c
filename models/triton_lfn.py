"""A fused Triton kernel that renders a whole LFN frame in one launch.

One program takes BLOCK_M pixels: it builds their rays from the camera (cam2world and pinhole
intrinsics, the convention of models/cameras.py), turns them into Plücker coordinates, runs every
layer of the folded per-ray MLP (models/mlp.py) with fp16 or bf16 operands and fp32 accumulation,
and writes sigmoid colors as RGBA. Activations stay on chip; only the output reaches global memory.

    lfn = TritonLFN(renderer.mlp_tensors)          # packs the weights once
    lfn.set_mlp_tensors(other_latent_tensors)      # new latent: copies into the same buffers
    lfn.render_rgba(cam2world, res, out=texture)   # (res*res, 4), nothing allocated per frame

Triton is optional: importing this module never needs it (the kernel is decorated on first use),
and triton_available() says why the backend can't run. Under TRITON_INTERPRET=1, set before
triton is first imported, the same kernel runs on CPU tensors in Triton's interpreter (tests).
"""

from __future__ import annotations

import functools

import torch

from models.cameras import intrinsics

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs; triton_available() reports it
    triton = tl = None

IN_PAD = 16  # the 6 Plücker coordinates padded to tl.dot's smallest K
OPERAND_DTYPES = (torch.float16, torch.bfloat16)
OUTPUT_DTYPES = (torch.float16, torch.float32)
# The interpreter runs programs one after another on the CPU: small tiles, and no autotuning.
INTERPRETER_META = {"BLOCK_M": 16, "CHUNKS": 2}


def triton_available() -> tuple[bool, str]:
    """(True, "") when the fused kernel can run on this machine, else (False, why not)."""
    if triton is None:
        return False, "triton is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    return True, ""


def _lfn_kernel(
    out_ptr, rays_ptr, pose_ptr,
    w_in_ptr, b_in_ptr, w_hid_ptr, b_hid_ptr, w_out_ptr, b_out_ptr,
    n_rays, out_ch, res, fx, fy, cx, cy,
    WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, FUSED_RAYS: tl.constexpr,
    IN_PAD: tl.constexpr, BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = rows < n_rays
    k_in = tl.arange(0, IN_PAD)[None, :]
    if FUSED_RAYS:
        # Pixel (col, row) of a row-major res×res frame, through its center; models/cameras.py.
        px = ((rows % res).to(tl.float32) + 0.5 - cx) / fx
        py = ((rows // res).to(tl.float32) + 0.5 - cy) / fy
        dx = tl.load(pose_ptr + 0) * px + tl.load(pose_ptr + 1) * py + tl.load(pose_ptr + 2)
        dy = tl.load(pose_ptr + 4) * px + tl.load(pose_ptr + 5) * py + tl.load(pose_ptr + 6)
        dz = tl.load(pose_ptr + 8) * px + tl.load(pose_ptr + 9) * py + tl.load(pose_ptr + 10)
        inv_norm = 1.0 / tl.sqrt(dx * dx + dy * dy + dz * dz)
        dx, dy, dz = dx * inv_norm, dy * inv_norm, dz * inv_norm
        ox, oy, oz = tl.load(pose_ptr + 3), tl.load(pose_ptr + 7), tl.load(pose_ptr + 11)
        # Plücker (d, o × d) as columns 0..5 of a (BLOCK_M, IN_PAD) tile, zeros after.
        x = tl.where(k_in == 0, dx[:, None], 0.0)
        x = tl.where(k_in == 1, dy[:, None], x)
        x = tl.where(k_in == 2, dz[:, None], x)
        x = tl.where(k_in == 3, (oy * dz - oz * dy)[:, None], x)
        x = tl.where(k_in == 4, (oz * dx - ox * dz)[:, None], x)
        x = tl.where(k_in == 5, (ox * dy - oy * dx)[:, None], x)
    else:
        x = tl.load(rays_ptr + rows[:, None] * 6 + k_in, mask=valid[:, None] & (k_in < 6), other=0.0)
    operand = w_in_ptr.dtype.element_ty
    x = x.to(operand)

    # Activations live as a tuple of CHUNKS column blocks (BLOCK_M, C): Triton can't slice a
    # register tile, but a layer's K-chunk i is just block i, and its output block j is a new
    # tuple entry. Each (C, C) weight tile is a tl.dot operand loaded from L2; only one tile
    # and one fp32 accumulator block are live at a time, which keeps registers from spilling.
    C: tl.constexpr = WIDTH // CHUNKS
    tile_k = tl.arange(0, C)[:, None]
    tile_n = tl.arange(0, C)[None, :]
    h = ()
    for j in tl.static_range(CHUNKS):
        w = tl.load(w_in_ptr + tl.arange(0, IN_PAD)[:, None] * WIDTH + j * C + tile_n)
        acc = tl.dot(x, w, tl.load(b_in_ptr + j * C + tile_n).broadcast_to(BLOCK_M, C))
        h = h + (tl.maximum(acc, 0.0).to(operand),)
    for layer in tl.static_range(N_HIDDEN):
        weights = w_hid_ptr + layer * WIDTH * WIDTH
        new = ()
        for j in tl.static_range(CHUNKS):
            acc = tl.load(b_hid_ptr + layer * WIDTH + j * C + tile_n).broadcast_to(BLOCK_M, C)
            for i in tl.static_range(CHUNKS):
                acc = tl.dot(h[i], tl.load(weights + (i * C + tile_k) * WIDTH + j * C + tile_n), acc)
            new = new + (tl.maximum(acc, 0.0).to(operand),)
        h = new

    # The 3-wide head as fp32 row reductions: a tl.dot would need N padded to 16, and on
    # Triton 3.6 / H100 such a narrow dot after the wide layers faulted (illegal address).
    cols = tl.arange(0, C)
    red = tl.load(b_out_ptr + 0).broadcast_to(BLOCK_M)
    green = tl.load(b_out_ptr + 1).broadcast_to(BLOCK_M)
    blue = tl.load(b_out_ptr + 2).broadcast_to(BLOCK_M)
    for i in tl.static_range(CHUNKS):
        block = h[i].to(tl.float32)
        red += tl.sum(block * tl.load(w_out_ptr + i * C + cols)[None, :], axis=1)
        green += tl.sum(block * tl.load(w_out_ptr + WIDTH + i * C + cols)[None, :], axis=1)
        blue += tl.sum(block * tl.load(w_out_ptr + 2 * WIDTH + i * C + cols)[None, :], axis=1)
    c = tl.arange(0, 4)[None, :]
    rgba = tl.where(c == 0, tl.sigmoid(red)[:, None], tl.sigmoid(green)[:, None])
    rgba = tl.where(c == 2, tl.sigmoid(blue)[:, None], rgba)
    rgba = tl.where(c == 3, 1.0, rgba)  # alpha; dropped by the mask when out_ch is 3
    tl.store(
        out_ptr + rows[:, None] * out_ch + c, rgba.to(out_ptr.dtype.element_ty),
        mask=valid[:, None] & (c < out_ch),
    )


# (BLOCK_M, num_warps, CHUNKS) tried on a GPU, once per layer shape, ray source and dtypes. On an
# H100 at width 256 (1024² frame, kernel alone): (128, 8, 2) 1.46 ms, (64, 4, 2) 1.78,
# (128, 8, 4) 1.74, (64, 4, 4) 1.96; the two kept are the best with blocks valid from width 32.
TUNE_CONFIGS = ((128, 8, 2), (64, 4, 2))


@functools.cache
def _kernel(interpret: bool):
    """The launchable kernel and the meta-parameters it is given: autotuned on a GPU,
    INTERPRETER_META in the interpreter."""
    jitted = triton.jit(_lfn_kernel, do_not_specialize=["n_rays", "out_ch", "res"])
    if interpret:
        return jitted, INTERPRETER_META
    configs = [
        triton.Config({"BLOCK_M": bm, "CHUNKS": chunks}, num_warps=warps, num_stages=1)
        for bm, warps, chunks in TUNE_CONFIGS
    ]
    # cache_results: the choice is kept on disk with the compiled kernels, so a later process
    # skips the benchmarking (the first tuning of a key compiles every config: ~10 s each).
    tuned = triton.autotune(configs, key=["WIDTH", "N_HIDDEN", "FUSED_RAYS"], cache_results=True)
    return tuned(jitted), {}


def _supported_width(value: int) -> bool:
    """A power of two (tl.arange) of at least 32: two column blocks of tl.dot's minimum 16."""
    return value >= 32 and value & (value - 1) == 0


class TritonLFN:
    """The folded per-ray MLP in the fused kernel's layout, with preallocated weight buffers.

    Layout: input and hidden weights transposed to (K, N), N contiguous, in `dtype`, the input
    layer's K padded with zeros to IN_PAD; the head (3, W) and all biases in fp32.
    """

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype = torch.float16):
        if dtype not in OPERAND_DTYPES:
            raise ValueError(f"operand dtype must be float16 or bfloat16, not {dtype}")
        w_in, _, w_hidden, _, w_out, _ = mlp_tensors
        width, in_dim = w_in.shape
        if not _supported_width(width) or in_dim != 6 or w_out.shape[0] != 3:
            raise ValueError(
                f"needs 6 inputs, 3 outputs and a power-of-two width ≥ 32; got in {in_dim}, "
                f"width {width}, out {w_out.shape[0]}"
            )
        device = w_in.device
        self.width, self.hidden = width, w_hidden.shape[0]
        self.dtype, self.device = dtype, device
        self._w_in = torch.zeros(IN_PAD, width, dtype=dtype, device=device)
        self._b_in = torch.zeros(width, dtype=torch.float32, device=device)
        self._w_hid = torch.zeros(self.hidden, width, width, dtype=dtype, device=device)
        self._b_hid = torch.zeros(self.hidden, width, dtype=torch.float32, device=device)
        self._w_out = torch.zeros(3, width, dtype=torch.float32, device=device)
        self._b_out = torch.zeros(3, dtype=torch.float32, device=device)
        self._pose = torch.zeros(3, 4, dtype=torch.float32, device=device)
        self.set_mlp_tensors(mlp_tensors)

    @torch.no_grad()
    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        """Re-pack a latent's folded tensors into the existing buffers: nothing is allocated."""
        w_in, b_in, w_hidden, b_hidden, w_out, b_out = mlp_tensors
        if w_hidden.shape != self._w_hid.shape:
            raise ValueError(f"hidden weights {tuple(w_hidden.shape)} don't match {tuple(self._w_hid.shape)}")
        self._w_in[:6].copy_(w_in.t())
        self._b_in.copy_(b_in)
        self._w_hid.copy_(w_hidden.transpose(1, 2))
        self._b_hid.copy_(b_hidden)
        self._w_out.copy_(w_out)
        self._b_out.copy_(b_out)

    def _launch(self, out: torch.Tensor, n_rays: int, out_ch: int, res: int = 1,
                rays: torch.Tensor | None = None) -> None:
        """Rays from the camera in self._pose at `res` when `rays` is None, else from `rays`."""
        kernel, fixed = _kernel(bool(triton.knobs.runtime.interpret))
        kernel[lambda meta: (triton.cdiv(n_rays, meta["BLOCK_M"]),)](
            out, self._pose if rays is None else rays, self._pose,
            self._w_in, self._b_in, self._w_hid, self._b_hid, self._w_out, self._b_out,
            n_rays, out_ch, res, *_camera(res),
            WIDTH=self.width, N_HIDDEN=self.hidden, FUSED_RAYS=rays is None, IN_PAD=IN_PAD, **fixed,
        )

    @torch.no_grad()
    def render_rgba(
        self, cam2world: torch.Tensor, res: int, out: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float16,
    ) -> torch.Tensor:
        """A res×res frame as (res*res, 4) RGBA, alpha 1, rows top to bottom.

        `out`, when given, is written in place (float16 or float32, contiguous, res*res*4 values,
        e.g. a mapped GL texture); then the frame allocates nothing. `dtype` is for a new `out`.
        """
        if out is None:
            out = torch.empty(res * res, 4, dtype=dtype, device=self.device)
        if out.dtype not in OUTPUT_DTYPES or not out.is_contiguous() or out.numel() != res * res * 4:
            raise ValueError(f"out must be a contiguous float16/float32 tensor of {res * res * 4} values")
        self._pose.copy_(cam2world[:3, :4])  # read on the device: a CUDA graph replays new poses
        self._launch(out, res * res, 4, res)
        return out.view(res * res, 4)

    @torch.no_grad()
    def render(self, cam2world: torch.Tensor, res: int) -> torch.Tensor:
        """(res, res, 3) colors in the operand dtype: the renderer interface."""
        out = torch.empty(res, res, 3, dtype=self.dtype, device=self.device)
        self._pose.copy_(cam2world[:3, :4])
        self._launch(out, res * res, 3, res)
        return out

    @torch.no_grad()
    def colors(self, plucker_rays: torch.Tensor) -> torch.Tensor:
        """(N, 6) Plücker rays → (N, 3) colors, no fused ray generation (for checks)."""
        rays = plucker_rays.to(device=self.device, dtype=torch.float32).contiguous()
        out = torch.empty(rays.shape[0], 3, dtype=self.dtype, device=self.device)
        self._launch(out, rays.shape[0], 3, rays=rays)
        return out


@functools.lru_cache(maxsize=16)
def _camera(res: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of models.cameras.intrinsics for a square frame, cached per resolution."""
    k = intrinsics(res, res)
    return float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
