"""A fused Triton kernel that renders a whole LFN frame in one launch.

One program takes BLOCK_M pixels: it builds their rays from the camera (cam2world and pinhole
intrinsics, the convention of models/cameras.py), turns them into Plücker coordinates, runs every
layer of the folded per-ray MLP (models/mlp.py) with fp16 or bf16 operands and fp32 accumulation,
and writes sigmoid colors as RGBA. Activations stay on chip; only the output reaches global memory.
For gradient depth the same kernel also stores every layer's ReLU mask as bits, and a second
kernel pulls color derivatives back through the layers (reverse mode) to write each pixel's depth
equations (models/depth.py).

    lfn = TritonLFN(renderer.mlp_tensors)          # packs the weights once
    lfn.set_mlp_tensors(other_latent_tensors)      # new latent: copies into the same buffers
    lfn.render_rgba(cam2world, res, out=texture)   # (res*res, 4), nothing allocated per frame
    lfn.depth_equations(cam2world, res)            # (res*res, 5): r, g, b, Σ a·b, Σ a²
    lfn.depth_equations(cam2world, res, summed=True)  # the channel-summed equations: one pass less

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


def _pixel_rays(rows, res, fx, fy, cx, cy, pose_ptr):
    """Origin and unit direction of pixel `rows` (col, row of a row-major res×res frame, through
    its center) of the camera at pose_ptr (3×4 cam2world); the convention of models/cameras.py."""
    px = ((rows % res).to(tl.float32) + 0.5 - cx) / fx
    py = ((rows // res).to(tl.float32) + 0.5 - cy) / fy
    dx = tl.load(pose_ptr + 0) * px + tl.load(pose_ptr + 1) * py + tl.load(pose_ptr + 2)
    dy = tl.load(pose_ptr + 4) * px + tl.load(pose_ptr + 5) * py + tl.load(pose_ptr + 6)
    dz = tl.load(pose_ptr + 8) * px + tl.load(pose_ptr + 9) * py + tl.load(pose_ptr + 10)
    inv_norm = 1.0 / tl.sqrt(dx * dx + dy * dy + dz * dz)
    origin = (tl.load(pose_ptr + 3), tl.load(pose_ptr + 7), tl.load(pose_ptr + 11))
    return origin, (dx * inv_norm, dy * inv_norm, dz * inv_norm)


def _ray_tangents(origin, direction, pose_ptr, axis: tl.constexpr):
    """models/depth.py's ray_tangents for image axis `axis` (pose column 0 right, 1 down), made ⊥
    d: a shift of the ray along u is (0, u × d), a rotation toward u is (u, o × u)."""
    ox, oy, oz = origin
    dx, dy, dz = direction
    ax, ay, az = tl.load(pose_ptr + axis), tl.load(pose_ptr + 4 + axis), tl.load(pose_ptr + 8 + axis)
    along = ax * dx + ay * dy + az * dz
    ux, uy, uz = ax - along * dx, ay - along * dy, az - along * dz
    inv_u = 1.0 / tl.sqrt(ux * ux + uy * uy + uz * uz)
    ux, uy, uz = ux * inv_u, uy * inv_u, uz * inv_u
    zero = tl.zeros_like(dx)
    shift = (zero, zero, zero, uy * dz - uz * dy, uz * dx - ux * dz, ux * dy - uy * dx)
    rotation = (ux, uy, uz, oy * uz - oz * uy, oz * ux - ox * uz, ox * uy - oy * ux)
    return shift, rotation


def _store_mask(masks_ptr, rows, valid, active, first_unit, units_per_ray, C: tl.constexpr):
    """Write a (BLOCK_M, C) ReLU mask as C / 8 bytes per ray, bit b of byte j for unit 8j + b, at
    unit `first_unit` of each ray's units_per_ray (every layer's units, input layer first).

    The bytes come from one small tensor-core product, mask (0/1) × a matrix of powers of two
    (exact: sums of distinct powers below 256). It works for any column block of ≥ 16 units, so
    every width has the same tile; 32-bit words packed by reshape and sum needed blocks of ≥ 32
    and ran at the same speed (H100, PERF.md).
    """
    N: tl.constexpr = 16 if C // 8 < 16 else C // 8  # tl.dot's smallest N; extra columns unused
    unit = tl.arange(0, C)[:, None]
    byte = tl.arange(0, N)[None, :]
    powers = tl.where(unit // 8 == byte, (1 << (unit % 8)).to(tl.float16), 0.0)
    packed = tl.dot(active.to(tl.float16), powers)
    first_byte = rows[:, None] * (units_per_ray // 8) + first_unit // 8
    tl.store(masks_ptr + first_byte + byte, packed.to(tl.uint8), mask=valid[:, None] & (byte < C // 8))


def _load_mask(masks_ptr, rows, valid, first_unit, units_per_ray, C: tl.constexpr):
    """_store_mask's (BLOCK_M, C) mask read back."""
    byte = tl.arange(0, C // 8)[None, :]
    first_byte = rows[:, None] * (units_per_ray // 8) + first_unit // 8
    packed = tl.load(masks_ptr + first_byte + byte, mask=valid[:, None], other=0).to(tl.int32)
    bits = (packed[:, :, None] >> tl.arange(0, 8)[None, None, :]) & 1
    return tl.reshape(bits, (packed.shape[0], C)) != 0


def _slope(out_ptr, rows, valid, channel, ch: tl.constexpr):
    """The cotangent d color / d logit = sigmoid' = c (1 − c) of channel `ch` where the reverse
    pass pulls it back (`channel` is ch, or −1 for all three), else 0; from the stored colors."""
    chosen = ((channel < 0) | (channel == ch)).to(tl.float32)
    color = tl.load(out_ptr + rows * 5 + ch, mask=valid, other=0.0)
    return chosen * color * (1.0 - color)


# Device functions the kernels call by their global names; _bind_device_functions jits them.
DEVICE_FUNCTIONS = {f.__name__: f for f in (_pixel_rays, _ray_tangents, _store_mask, _load_mask, _slope)}


def _bind_device_functions(interpret: bool) -> None:
    """The compiler resolves a kernel's callees from this module's globals and needs them jitted;
    the interpreter runs a kernel as Python and calls the plain functions. (One process uses one
    of the two: tests interpret, a GPU compiles.)"""
    for name, fn in DEVICE_FUNCTIONS.items():
        globals()[name] = fn if interpret else triton.jit(fn)


def _lfn_kernel(
    out_ptr, rays_ptr, pose_ptr, masks_ptr,
    w_in_ptr, b_in_ptr, w_hid_ptr, b_hid_ptr, w_out_ptr, b_out_ptr,
    n_rays, out_ch, res, fx, fy, cx, cy,
    WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, FUSED_RAYS: tl.constexpr, MASKS: tl.constexpr,
    IN_PAD: tl.constexpr, BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = rows < n_rays
    k_in = tl.arange(0, IN_PAD)[None, :]
    operand = w_in_ptr.dtype.element_ty
    if FUSED_RAYS:
        origin, direction = _pixel_rays(rows, res, fx, fy, cx, cy, pose_ptr)
        ox, oy, oz = origin  # flat unpacking only: Triton's dependency scan rejects nested targets
        dx, dy, dz = direction
        # Plücker (d, o × d) as columns 0..5 of a (BLOCK_M, IN_PAD) tile, zeros after.
        plucker = (dx, dy, dz, oy * dz - oz * dy, oz * dx - ox * dz, ox * dy - oy * dx)
        x = tl.zeros((BLOCK_M, IN_PAD), tl.float32)
        for k in tl.static_range(6):
            x = tl.where(k_in == k, plucker[k][:, None], x)
    else:
        x = tl.load(rays_ptr + rows[:, None] * 6 + k_in, mask=valid[:, None] & (k_in < 6), other=0.0)
    x = x.to(operand)

    # Activations live as a tuple of (BLOCK_M, C) column blocks: Triton can't slice a register
    # tile, but a layer's K-chunk i is just block i, and its output block j is a new tuple entry.
    # Each (C, C) weight tile is a tl.dot operand loaded from L2; only one tile and one fp32
    # accumulator block are live at a time, which keeps registers from spilling. With MASKS every
    # layer's ReLU mask is stored too, for the reverse passes of the depth equations.
    C: tl.constexpr = WIDTH // CHUNKS
    UNITS: tl.constexpr = WIDTH * (N_HIDDEN + 1)
    tile_k = tl.arange(0, C)[:, None]
    tile_n = tl.arange(0, C)[None, :]
    h = ()
    for j in tl.static_range(CHUNKS):
        w = tl.load(w_in_ptr + tl.arange(0, IN_PAD)[:, None] * WIDTH + j * C + tile_n)
        acc = tl.dot(x, w, tl.load(b_in_ptr + j * C + tile_n).broadcast_to(BLOCK_M, C))
        h = h + (tl.maximum(acc, 0.0).to(operand),)
        if MASKS:
            _store_mask(masks_ptr, rows, valid, acc > 0.0, j * C, UNITS, C)
    for layer in tl.static_range(N_HIDDEN):
        weights = w_hid_ptr + layer * WIDTH * WIDTH
        new = ()
        for j in tl.static_range(CHUNKS):
            acc = tl.load(b_hid_ptr + layer * WIDTH + j * C + tile_n).broadcast_to(BLOCK_M, C)
            for i in tl.static_range(CHUNKS):
                w = tl.load(weights + (i * C + tile_k) * WIDTH + j * C + tile_n)
                acc = tl.dot(h[i], w, acc)
            new = new + (tl.maximum(acc, 0.0).to(operand),)
            if MASKS:
                _store_mask(masks_ptr, rows, valid, acc > 0.0, (layer + 1) * WIDTH + j * C, UNITS, C)
        h = new

    # The 3-wide head as fp32 row reductions: a tl.dot would need N padded to 16, and on
    # Triton 3.6 / H100 such a narrow dot after the wide layers faulted (illegal address).
    cols = tl.arange(0, C)
    colors = ()
    for ch in tl.static_range(3):
        total = tl.load(b_out_ptr + ch).broadcast_to(BLOCK_M)
        for i in tl.static_range(CHUNKS):
            row = tl.load(w_out_ptr + ch * WIDTH + i * C + cols)[None, :]
            total += tl.sum(h[i].to(tl.float32) * row, axis=1)
        colors = colors + (tl.sigmoid(total),)
    c = tl.arange(0, 4)[None, :]
    values = tl.where(c == 0, colors[0][:, None], tl.where(c == 1, colors[1][:, None], colors[2][:, None]))
    values = tl.where(c == 3, 1.0, values)  # alpha; dropped by the mask when out_ch is 3
    written = 3 if MASKS else out_ch  # with masks, out's columns 3 and 4 are the reverse passes'
    tl.store(
        out_ptr + rows[:, None] * out_ch + c, values.to(out_ptr.dtype.element_ty),
        mask=valid[:, None] & (c < written),
    )


def _reverse_depth_kernel(
    out_ptr, pose_ptr, masks_ptr, w_in_ptr, w_hid_ptr, w_out_ptr,
    n_rays, res, fx, fy, cx, cy, channel, skip_saturated,
    WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, IN_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr,
):
    """The reverse-mode half of the depth equations (models/depth.py): after _lfn_kernel with
    MASKS wrote each pixel's color and ReLU masks, pull one color's derivative back through the
    layers to the 6 Plücker inputs, dot that gradient with the 4 ray tangents, and write Σ a·b and
    Σ a² to columns 3 and 4. `channel` -1 pulls back the channels' sum (the summed equations, one
    pass); 0, 1, 2 pull back that channel alone (per-channel equations, three passes: channel 0
    writes the columns, 1 and 2 add their equations to them). A runtime argument, not a
    constexpr: one compiled kernel serves all four, so the first depth frame compiles once.
    A tile whose colors all saturated skips the pass (below) unless `skip_saturated` is 0."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = rows < n_rays
    operand = w_in_ptr.dtype.element_ty
    C: tl.constexpr = WIDTH // CHUNKS
    UNITS: tl.constexpr = WIDTH * (N_HIDDEN + 1)
    cols = tl.arange(0, C)
    tile_rows = tl.arange(0, C)[:, None]
    tile_cols = tl.arange(0, C)[None, :]
    # Where every color of the tile saturated (sigmoid' exactly 0 in fp32: the white background
    # around an object) the pass would pull back exact zeros, so it is not run: its equations are
    # written as zeros, or left as they are when channels 1 and 2 add theirs. The output is the
    # same bit for bit; about 2/3 of a 512² car frame's tiles are such (PERF.md). The branch loads
    # the slopes again: kept live across it, they spilled 52 bytes a thread (bench/kernel_stats.py).
    slope_sum = (_slope(out_ptr, rows, valid, channel, 0) + _slope(out_ptr, rows, valid, channel, 1)
                 + _slope(out_ptr, rows, valid, channel, 2))
    if (tl.max(slope_sum) > 0.0) | (skip_saturated == 0):
        g = ()
        for j in tl.static_range(CHUNKS):
            acc = tl.zeros((BLOCK_M, C), tl.float32)
            for ch in tl.static_range(3):
                slope = _slope(out_ptr, rows, valid, channel, ch)
                acc += slope[:, None] * tl.load(w_out_ptr + ch * WIDTH + j * C + cols)[None, :]
            active = _load_mask(masks_ptr, rows, valid, N_HIDDEN * WIDTH + j * C, UNITS, C)
            g = g + (tl.where(active, acc, 0.0).to(operand),)
        for step in tl.static_range(N_HIDDEN):
            layer = N_HIDDEN - 1 - step
            weights = w_hid_ptr + layer * WIDTH * WIDTH  # (K, N) = (in, out), N contiguous
            new = ()
            for i in tl.static_range(CHUNKS):  # block i of the layer's input
                acc = tl.zeros((BLOCK_M, C), tl.float32)
                for j in tl.static_range(CHUNKS):  # times the transposed tile: element [n, k] = W[k, n]
                    w_t = tl.load(weights + (i * C + tile_cols) * WIDTH + j * C + tile_rows)
                    acc = tl.dot(g[j], w_t, acc)
                active = _load_mask(masks_ptr, rows, valid, layer * WIDTH + i * C, UNITS, C)
                new = new + (tl.where(active, acc, 0.0).to(operand),)
            g = new
        # Through the input layer: 6 row reductions give the gradient w.r.t. (d, o × d).
        grad = ()
        for k in tl.static_range(6):
            total = tl.zeros((BLOCK_M,), tl.float32)
            for j in tl.static_range(CHUNKS):
                row = tl.load(w_in_ptr + k * WIDTH + j * C + cols).to(tl.float32)[None, :]
                total += tl.sum(g[j].to(tl.float32) * row, axis=1)
            grad = grad + (total,)
        origin, direction = _pixel_rays(rows, res, fx, fy, cx, cy, pose_ptr)
        # Channels 1 and 2 add to the equations of those before them. The test is a block, not a
        # scalar: triton 3.9's interpreter rejects a mask that mixes the two.
        adds = valid & (tl.full((BLOCK_M,), channel, tl.int32) > 0)
        ab = tl.load(out_ptr + rows * 5 + 3, mask=adds, other=0.0)
        aa = tl.load(out_ptr + rows * 5 + 4, mask=adds, other=0.0)
        for axis in tl.static_range(2):
            shift, rotation = _ray_tangents(origin, direction, pose_ptr, axis)
            a = tl.zeros((BLOCK_M,), tl.float32)
            b = tl.zeros((BLOCK_M,), tl.float32)
            for k in tl.static_range(6):
                a += grad[k] * shift[k]
                b += grad[k] * rotation[k]
            ab += a * b
            aa += a * a
        tl.store(out_ptr + rows * 5 + 3, ab, mask=valid)
        tl.store(out_ptr + rows * 5 + 4, aa, mask=valid)
    elif channel <= 0:
        zero = tl.zeros((BLOCK_M,), tl.float32)
        tl.store(out_ptr + rows * 5 + 3, zero, mask=valid)
        tl.store(out_ptr + rows * 5 + 4, zero, mask=valid)


# (BLOCK_M, num_warps, CHUNKS) tried on a GPU, once per layer shape, ray source, output and
# dtypes. Colors, on an H100 at width 256 (1024² frame, kernel alone): (128, 8, 2) 1.46 ms,
# (64, 4, 2) 1.78, (128, 8, 4) 1.74, (64, 4, 4) 1.96; the two kept are the best with blocks valid
# from width 32. Depth's passes (colors with masks, and each reverse pass; 512²): (128, 8, 2)
# beat (64, 4, 2) for both, so only it is compiled, which halves the first depth frame's tuning.
TUNE_CONFIGS = {"colors": ((128, 8, 2), (64, 4, 2)), "depth": ((128, 8, 2),)}


def _configs_for(configs: list, named_args: dict, **kwargs) -> list:
    """The autotuner's pruning hook: only the configs meant for this pass."""
    depth = kwargs.get("MASKS", True)  # the reverse kernel has no MASKS: it always reads them
    wanted = TUNE_CONFIGS["depth" if depth else "colors"]
    return [c for c in configs if (c.kwargs["BLOCK_M"], c.num_warps, c.kwargs["CHUNKS"]) in wanted]


def _launchable(fn, interpret: bool, modes: tuple[str, ...], key: list[str], no_specialize: list[str]):
    """`fn` jitted, and the meta-parameters it is given: autotuned over the configs of `modes`
    on a GPU, INTERPRETER_META in the interpreter."""
    _bind_device_functions(interpret)
    jitted = triton.jit(fn, do_not_specialize=no_specialize)
    if interpret:
        return jitted, INTERPRETER_META
    configs = [
        triton.Config({"BLOCK_M": bm, "CHUNKS": chunks}, num_warps=warps, num_stages=1)
        for bm, warps, chunks in dict.fromkeys(c for mode in modes for c in TUNE_CONFIGS[mode])
    ]
    # cache_results: the choice is kept on disk with the compiled kernels, so a later process
    # skips the benchmarking (the first tuning of a key compiles every config: ~10 s each).
    tuned = triton.autotune(configs, key=key, cache_results=True,
                            prune_configs_by={"early_config_prune": _configs_for})
    return tuned(jitted), {}


@functools.cache
def _kernel(interpret: bool):
    """The MLP kernel (colors, or colors and ReLU masks) and its meta-parameters."""
    return _launchable(_lfn_kernel, interpret, ("colors", "depth"),
                       ["WIDTH", "N_HIDDEN", "FUSED_RAYS", "MASKS"],
                       ["n_rays", "out_ch", "res"])


@functools.cache
def _reverse_kernel(interpret: bool):
    """The reverse pass of the depth equations and its meta-parameters."""
    return _launchable(_reverse_depth_kernel, interpret, ("depth",), ["WIDTH", "N_HIDDEN"],
                       ["n_rays", "res", "channel", "skip_saturated"])


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
        self._masks = torch.empty(0, dtype=torch.uint8, device=device)  # depth's ReLU masks, as bits
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
                rays: torch.Tensor | None = None, masks: torch.Tensor | None = None) -> None:
        """Rays from the camera in self._pose at `res` when `rays` is None, else from `rays`;
        `masks` also stores every layer's ReLU mask there (bits) for _reverse_depth_kernel."""
        kernel, fixed = _kernel(bool(triton.knobs.runtime.interpret))
        kernel[lambda meta: (triton.cdiv(n_rays, meta["BLOCK_M"]),)](
            out, self._pose if rays is None else rays, self._pose,
            self._pose if masks is None else masks,
            self._w_in, self._b_in, self._w_hid, self._b_hid, self._w_out, self._b_out,
            n_rays, out_ch, res, *_camera(res),
            WIDTH=self.width, N_HIDDEN=self.hidden, FUSED_RAYS=rays is None,
            MASKS=masks is not None, IN_PAD=IN_PAD, **fixed,
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
    def depth_equations(self, cam2world: torch.Tensor, res: int, summed: bool = False,
                        out: torch.Tensor | None = None, skip_saturated: bool = True) -> torch.Tensor:
        """(res*res, 5) float32: each pixel's color and its gradient-depth equations Σ a·b, Σ a²
        (models/depth.py's pixel_equations, per channel or `summed`), written into `out` when
        given (float32, contiguous, that shape). `skip_saturated` False runs the reverse passes
        on every tile, to time what the skip saves (bench/depth_skip.py); the output is the same.

        One color pass that keeps every ReLU mask, then reverse passes that pull a color's
        derivative back to the 6 ray inputs: one per channel, or one for the channels' sum.
        Each pass runs one stream through the layers at the colors kernel's tile size, where
        carrying the 4 ray tangents forward beside the colors needed 5 streams in small tiles.
        """
        n_rays = res * res
        if out is None:
            out = torch.empty(n_rays, 5, dtype=torch.float32, device=self.device)
        if out.dtype != torch.float32 or not out.is_contiguous() or out.shape != (n_rays, 5):
            raise ValueError(f"out must be a contiguous float32 tensor of shape ({n_rays}, 5)")
        mask_bytes = n_rays * self.width * (self.hidden + 1) // 8
        if self._masks.numel() < mask_bytes:  # grows to the largest frame, then is reused
            self._masks = torch.empty(mask_bytes, dtype=torch.uint8, device=self.device)
        self._pose.copy_(cam2world[:3, :4])
        self._launch(out, n_rays, 5, res, masks=self._masks)
        kernel, fixed = _reverse_kernel(bool(triton.knobs.runtime.interpret))
        for channel in (-1,) if summed else (0, 1, 2):
            kernel[lambda meta: (triton.cdiv(n_rays, meta["BLOCK_M"]),)](
                out, self._pose, self._masks, self._w_in, self._w_hid, self._w_out,
                n_rays, res, *_camera(res), channel, int(skip_saturated),
                WIDTH=self.width, N_HIDDEN=self.hidden, IN_PAD=IN_PAD, **fixed,
            )
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
