"""A fused Triton kernel that renders a whole LFN frame in one launch.

One program takes BLOCK_M pixels: it builds their rays from the camera (cam2world and pinhole
intrinsics, the convention of models/cameras.py), turns them into Plücker coordinates, runs every
layer of the folded per-ray MLP (models/mlp.py) with fp16 or bf16 operands and fp32 accumulation,
and writes sigmoid colors as RGBA. Activations stay on chip; only the output reaches global memory.
For gradient depth the same kernel also carries four forward-mode ray tangents through the layers
and writes each pixel's color with its depth equations (models/depth.py).

    lfn = TritonLFN(renderer.mlp_tensors)          # packs the weights once
    lfn.set_mlp_tensors(other_latent_tensors)      # new latent: copies into the same buffers
    lfn.render_rgba(cam2world, res, out=texture)   # (res*res, 4), nothing allocated per frame
    lfn.depth_equations(cam2world, res)            # (res*res, 5): r, g, b, Σ a·b, Σ a²

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
    WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, FUSED_RAYS: tl.constexpr, DEPTH: tl.constexpr,
    IN_PAD: tl.constexpr, BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr,
):
    tl.static_assert(FUSED_RAYS or not DEPTH, "depth tangents come from the camera")
    # Streams through the MLP: the rays (primal), and with DEPTH four forward-mode tangents
    # (shift, rotation) × (right, down) that share each weight tile and the primal's ReLU mask.
    STREAMS: tl.constexpr = 5 if DEPTH else 1
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = rows < n_rays
    k_in = tl.arange(0, IN_PAD)[None, :]
    operand = w_in_ptr.dtype.element_ty
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
        # Plücker (d, o × d), then per image axis u (made ⊥ d) the tangents of models/depth.py's
        # ray_tangents: a shift of the ray along u is (0, u × d), a rotation toward u is (u, o × u).
        columns = ((dx, dy, dz, oy * dz - oz * dy, oz * dx - ox * dz, ox * dy - oy * dx),)
        if DEPTH:
            zero = tl.zeros((BLOCK_M,), tl.float32)
            for axis in tl.static_range(2):  # pose columns 0 (right) and 1 (down)
                ax = tl.load(pose_ptr + axis)
                ay, az = tl.load(pose_ptr + 4 + axis), tl.load(pose_ptr + 8 + axis)
                along = ax * dx + ay * dy + az * dz
                ux, uy, uz = ax - along * dx, ay - along * dy, az - along * dz
                inv_u = 1.0 / tl.sqrt(ux * ux + uy * uy + uz * uz)
                ux, uy, uz = ux * inv_u, uy * inv_u, uz * inv_u
                columns = columns + (
                    (zero, zero, zero, uy * dz - uz * dy, uz * dx - ux * dz, ux * dy - uy * dx),
                    (ux, uy, uz, oy * uz - oz * uy, oz * ux - ox * uz, ox * uy - oy * ux),
                )
        # Each stream's 6 values as columns 0..5 of a (BLOCK_M, IN_PAD) tile, zeros after.
        inputs = ()
        for s in tl.static_range(STREAMS):
            tile = tl.zeros((BLOCK_M, IN_PAD), tl.float32)
            for k in tl.static_range(6):
                tile = tl.where(k_in == k, columns[s][k][:, None], tile)
            inputs = inputs + (tile.to(operand),)
    else:
        x = tl.load(rays_ptr + rows[:, None] * 6 + k_in, mask=valid[:, None] & (k_in < 6), other=0.0)
        inputs = (x.to(operand),)

    # Activations live as a flat tuple of (BLOCK_M, C) column blocks, entry j * STREAMS + s for
    # block j of stream s: Triton can't slice a register tile, but a layer's K-chunk i is just
    # block i, and its output block j is a new tuple entry. Each (C, C) weight tile is a tl.dot
    # operand loaded from L2; only one tile and one fp32 accumulator block are live at a time,
    # which keeps registers from spilling.
    C: tl.constexpr = WIDTH // CHUNKS
    tile_k = tl.arange(0, C)[:, None]
    tile_n = tl.arange(0, C)[None, :]
    h = ()
    for j in tl.static_range(CHUNKS):
        w = tl.load(w_in_ptr + tl.arange(0, IN_PAD)[:, None] * WIDTH + j * C + tile_n)
        acc = tl.dot(inputs[0], w, tl.load(b_in_ptr + j * C + tile_n).broadcast_to(BLOCK_M, C))
        h = h + (tl.maximum(acc, 0.0).to(operand),)
        for s in tl.static_range(1, STREAMS):  # a tangent passes where its primal's ReLU does
            h = h + (tl.where(acc > 0.0, tl.dot(inputs[s], w), 0.0).to(operand),)
    for layer in tl.static_range(N_HIDDEN):
        weights = w_hid_ptr + layer * WIDTH * WIDTH
        new = ()
        for j in tl.static_range(CHUNKS):
            # One stream at a time (the primal first: its ReLU mask gates the tangents), so only
            # one fp32 accumulator block is live; the weight tiles come again from L1/L2.
            for s in tl.static_range(STREAMS):
                if s == 0:
                    acc = tl.load(b_hid_ptr + layer * WIDTH + j * C + tile_n).broadcast_to(BLOCK_M, C)
                else:
                    acc = tl.zeros((BLOCK_M, C), tl.float32)
                for i in tl.static_range(CHUNKS):
                    w = tl.load(weights + (i * C + tile_k) * WIDTH + j * C + tile_n)
                    acc = tl.dot(h[i * STREAMS + s], w, acc)
                if s == 0:
                    active = acc > 0.0
                    new = new + (tl.maximum(acc, 0.0).to(operand),)
                else:
                    new = new + (tl.where(active, acc, 0.0).to(operand),)
        h = new

    # The 3-wide head as fp32 row reductions: a tl.dot would need N padded to 16, and on
    # Triton 3.6 / H100 such a narrow dot after the wide layers faulted (illegal address).
    # logits[s * 3 + ch]: channel ch of stream s (a tangent's has no bias: it is a derivative).
    cols = tl.arange(0, C)
    logits = ()
    for s in tl.static_range(STREAMS):
        for ch in tl.static_range(3):
            if s == 0:
                total = tl.load(b_out_ptr + ch).broadcast_to(BLOCK_M)
            else:
                total = tl.zeros((BLOCK_M,), tl.float32)
            for i in tl.static_range(CHUNKS):
                row = tl.load(w_out_ptr + ch * WIDTH + i * C + cols)[None, :]
                total += tl.sum(h[i * STREAMS + s].to(tl.float32) * row, axis=1)
            logits = logits + (total,)
    red, green, blue = tl.sigmoid(logits[0]), tl.sigmoid(logits[1]), tl.sigmoid(logits[2])
    c = tl.arange(0, 8)[None, :]
    values = tl.where(c == 0, red[:, None], tl.where(c == 1, green[:, None], blue[:, None]))
    if DEPTH:
        # models/depth.py's per-pixel equations a·z = b, a the shift and b the rotation derivative
        # of a color (sigmoid' = c(1 − c)), summed over channels and axes: Σ a·b and Σ a².
        ab = tl.zeros((BLOCK_M,), tl.float32)
        aa = tl.zeros((BLOCK_M,), tl.float32)
        for ch in tl.static_range(3):
            color = tl.sigmoid(logits[ch])
            slope = color * (1.0 - color)
            for axis in tl.static_range(2):
                a = slope * logits[(1 + 2 * axis) * 3 + ch]
                b = slope * logits[(2 + 2 * axis) * 3 + ch]
                ab += a * b
                aa += a * a
        values = tl.where(c == 3, ab[:, None], values)
        values = tl.where(c == 4, aa[:, None], values)
    else:
        values = tl.where(c == 3, 1.0, values)  # alpha; dropped by the mask when out_ch is 3
    tl.store(
        out_ptr + rows[:, None] * out_ch + c, values.to(out_ptr.dtype.element_ty),
        mask=valid[:, None] & (c < out_ch),
    )


# (BLOCK_M, num_warps, CHUNKS) tried on a GPU, once per layer shape, ray source, output and
# dtypes. Colors, on an H100 at width 256 (1024² frame, kernel alone): (128, 8, 2) 1.46 ms,
# (64, 4, 2) 1.78, (128, 8, 4) 1.74, (64, 4, 4) 1.96; the two kept are the best with blocks valid
# from width 32. Depth carries 5 streams, so 5× the activations per ray (512² frame): (32, 8, 1)
# 3.3 ms with 24 spilled registers; (16, 4, 1) 12.8, (64, 8, 2) 21, (32, 8, 2) 109 ms spill
# thousands, and a config with 2 or more chunks compiles for 25-70 s. One config: no tuning.
TUNE_CONFIGS = {False: ((128, 8, 2), (64, 4, 2)), True: ((32, 8, 1),)}


def _configs_for(configs: list, named_args: dict, **kwargs) -> list:
    """The autotuner's pruning hook: only the configs meant for this output (colors or depth)."""
    wanted = {(bm, warps, chunks) for bm, warps, chunks in TUNE_CONFIGS[bool(kwargs["DEPTH"])]}
    return [c for c in configs if (c.kwargs["BLOCK_M"], c.num_warps, c.kwargs["CHUNKS"]) in wanted]


@functools.cache
def _kernel(interpret: bool):
    """The launchable kernel and the meta-parameters it is given: autotuned on a GPU,
    INTERPRETER_META in the interpreter."""
    jitted = triton.jit(_lfn_kernel, do_not_specialize=["n_rays", "out_ch", "res"])
    if interpret:
        return jitted, INTERPRETER_META
    configs = [
        triton.Config({"BLOCK_M": bm, "CHUNKS": chunks}, num_warps=warps, num_stages=1)
        for bm, warps, chunks in TUNE_CONFIGS[False] + TUNE_CONFIGS[True]
    ]
    # cache_results: the choice is kept on disk with the compiled kernels, so a later process
    # skips the benchmarking (the first tuning of a key compiles every config: ~10 s each).
    tuned = triton.autotune(
        configs, key=["WIDTH", "N_HIDDEN", "FUSED_RAYS", "DEPTH"], cache_results=True,
        prune_configs_by={"early_config_prune": _configs_for},
    )
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
                rays: torch.Tensor | None = None, depth: bool = False) -> None:
        """Rays from the camera in self._pose at `res` when `rays` is None, else from `rays`;
        `depth` writes colors and depth equations instead of colors."""
        kernel, fixed = _kernel(bool(triton.knobs.runtime.interpret))
        kernel[lambda meta: (triton.cdiv(n_rays, meta["BLOCK_M"]),)](
            out, self._pose if rays is None else rays, self._pose,
            self._w_in, self._b_in, self._w_hid, self._b_hid, self._w_out, self._b_out,
            n_rays, out_ch, res, *_camera(res),
            WIDTH=self.width, N_HIDDEN=self.hidden, FUSED_RAYS=rays is None, DEPTH=depth,
            IN_PAD=IN_PAD, **fixed,
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
    def depth_equations(self, cam2world: torch.Tensor, res: int) -> torch.Tensor:
        """(res*res, 5) float32: each pixel's color and its gradient-depth equations Σ a·b, Σ a²
        (models/depth.py), from one pass that carries the 4 ray tangents beside the colors."""
        out = torch.empty(res * res, 5, dtype=torch.float32, device=self.device)
        self._pose.copy_(cam2world[:3, :4])
        self._launch(out, res * res, 5, res, depth=True)
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
