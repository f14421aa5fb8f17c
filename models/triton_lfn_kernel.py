"""The fused LFN frame kernel: camera rays → Plücker → every layer of the folded MLP → colors.

One program takes BLOCK_M pixels: it builds their rays from the camera (cam2world and pinhole
intrinsics, the convention of models/cameras.py), turns them into Plücker coordinates, runs every
layer of the folded per-ray MLP (models/mlp.py) with fp16 or bf16 operands and fp32 accumulation,
and writes sigmoid colors as RGBA. Activations stay on chip; only the output reaches global memory.
BOUNDED rays whose line misses the unit sphere (models.plucker.meets_unit_sphere) are white, and a
tile of such rays runs no layer at all: at the default orbit that is 58 % of a 1920×1080 frame.
With MASKS it also stores every layer's ReLU mask as bits, which the reverse passes of
models/triton_depth_kernels.py read back. models/triton_lfn.py launches it.

The device functions the kernel calls are plain Python here; models.triton_lfn binds them (jitted
for the compiler, plain for the interpreter) before the first launch.
"""

from __future__ import annotations

try:
    import triton.language as tl
except ImportError:  # CPU-only installs: models.triton_lfn.triton_available() reports it
    tl = None

IN_PAD = 16  # the 6 Plücker coordinates padded to tl.dot's smallest K
FRAME_TILE_WIDTH = 16  # the kernel's TILE_W: a frame tile's width in pixels (_frame_tile), divides BLOCK_M


def _pixel_rays(rows, frame_width, fx, fy, cx, cy, pose_ptr):
    """Origin and unit direction of the pixels with flat indices `rows` (column index % frame_width,
    row index // frame_width of a row-major frame, through their centers) of the camera at pose_ptr
    (3×4 cam2world); the convention of models/cameras.py."""
    px = ((rows % frame_width).to(tl.float32) + 0.5 - cx) / fx
    py = ((rows // frame_width).to(tl.float32) + 0.5 - cy) / fy
    dx = tl.load(pose_ptr + 0) * px + tl.load(pose_ptr + 1) * py + tl.load(pose_ptr + 2)
    dy = tl.load(pose_ptr + 4) * px + tl.load(pose_ptr + 5) * py + tl.load(pose_ptr + 6)
    dz = tl.load(pose_ptr + 8) * px + tl.load(pose_ptr + 9) * py + tl.load(pose_ptr + 10)
    inv_norm = 1.0 / tl.sqrt(dx * dx + dy * dy + dz * dz)
    origin = (tl.load(pose_ptr + 3), tl.load(pose_ptr + 7), tl.load(pose_ptr + 11))
    return origin, (dx * inv_norm, dy * inv_norm, dz * inv_norm)



def _frame_tile(frame_width, frame_height, BLOCK_M: tl.constexpr, TILE_W: tl.constexpr):
    """The flat pixel indices of this program's tile of a row-major frame and which lie inside it:
    tiles TILE_W pixels wide and BLOCK_M / TILE_W rows tall, row by row. A
    block rather than a strip of one row keeps the tiles a BOUNDED frame skips whole: at 512²,
    78 % of 16 × 8 tiles meet the unit sphere and 90 % of 128 × 1 strips do."""
    tiles_across = tl.cdiv(frame_width, TILE_W)
    ray = tl.arange(0, BLOCK_M)
    col = (tl.program_id(0) % tiles_across) * TILE_W + ray % TILE_W
    row = (tl.program_id(0) // tiles_across) * (BLOCK_M // TILE_W) + ray // TILE_W
    return row * frame_width + col, (col < frame_width) & (row < frame_height)


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



def _layers(x, rows, valid, masks_ptr, w_in_ptr, b_in_ptr, w_hid_ptr, b_hid_ptr,
            WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, MASKS: tl.constexpr, IN_PAD: tl.constexpr,
            BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr):
    """Every ReLU layer of the folded MLP on a (BLOCK_M, IN_PAD) input tile of operands: the last
    hidden activations, as a tuple of CHUNKS (BLOCK_M, WIDTH / CHUNKS) column blocks. With MASKS
    every layer's ReLU mask is stored too, for the reverse passes of the depth equations.

    Triton can't slice a register tile, but a layer's K-chunk i is just block i, and its output
    block j is a new tuple entry. Each (C, C) weight tile is a tl.dot operand loaded from L2; only
    one tile and one fp32 accumulator block are live at a time, which keeps registers from
    spilling."""
    operand = w_in_ptr.dtype.element_ty
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
    return h


def _head_row(h, w_out_ptr, b_out_ptr, ch, WIDTH: tl.constexpr, BLOCK_M: tl.constexpr,
              CHUNKS: tl.constexpr):
    """Output `ch` of the linear head on _layers' activations, (BLOCK_M,) fp32: an fp32 row
    reduction, as a tl.dot would need N padded to 16, and on Triton 3.6 / H100 such a narrow dot
    after the wide layers faulted (illegal address)."""
    C: tl.constexpr = WIDTH // CHUNKS
    cols = tl.arange(0, C)
    total = tl.load(b_out_ptr + ch).broadcast_to(BLOCK_M)
    for i in tl.static_range(CHUNKS):
        row = tl.load(w_out_ptr + ch * WIDTH + i * C + cols)[None, :]
        total += tl.sum(h[i].to(tl.float32) * row, axis=1)
    return total


def _ray_tile(rows, valid, rays_ptr, pose_ptr, frame_width, fx, fy, cx, cy,
              FUSED_RAYS: tl.constexpr, IN_PAD: tl.constexpr, BLOCK_M: tl.constexpr):
    """The (BLOCK_M, IN_PAD) fp32 tile of the rays `rows`: Plücker (d, o × d) in columns 0..5,
    zeros after; from the camera at pose_ptr (FUSED_RAYS), else read from rays_ptr."""
    k_in = tl.arange(0, IN_PAD)[None, :]
    if FUSED_RAYS:
        origin, direction = _pixel_rays(rows, frame_width, fx, fy, cx, cy, pose_ptr)
        ox, oy, oz = origin  # flat unpacking only: Triton's dependency scan rejects nested targets
        dx, dy, dz = direction
        plucker = (dx, dy, dz, oy * dz - oz * dy, oz * dx - ox * dz, ox * dy - oy * dx)
        x = tl.zeros((BLOCK_M, IN_PAD), tl.float32)
        for k in tl.static_range(6):
            x = tl.where(k_in == k, plucker[k][:, None], x)
    else:
        x = tl.load(rays_ptr + rows[:, None] * 6 + k_in, mask=valid[:, None] & (k_in < 6), other=0.0)
    return x


def _in_bound(x, valid, IN_PAD: tl.constexpr):
    """models.plucker.meets_unit_sphere on a ray tile: the moment (columns 3..5) shorter than 1."""
    k_in = tl.arange(0, IN_PAD)[None, :]
    return valid & (tl.sum(tl.where((k_in >= 3) & (k_in < 6), x * x, 0.0), axis=1) < 1.0)


def _lfn_kernel(
    out_ptr, rays_ptr, pose_ptr, masks_ptr,
    w_in_ptr, b_in_ptr, w_hid_ptr, b_hid_ptr, w_out_ptr, b_out_ptr,
    n_rays, out_ch, frame_width, fx, fy, cx, cy,
    WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, FUSED_RAYS: tl.constexpr, MASKS: tl.constexpr,
    BOUNDED: tl.constexpr, IN_PAD: tl.constexpr, TILE_W: tl.constexpr, BLOCK_M: tl.constexpr,
    CHUNKS: tl.constexpr,
):
    if FUSED_RAYS and BOUNDED:
        rows, valid = _frame_tile(frame_width, n_rays // frame_width, BLOCK_M, TILE_W)
    else:
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        valid = rows < n_rays
    x = _ray_tile(rows, valid, rays_ptr, pose_ptr, frame_width, fx, fy, cx, cy, FUSED_RAYS, IN_PAD, BLOCK_M)
    c = tl.arange(0, 4)[None, :]
    written = 3 if MASKS else out_ch  # with masks, out's columns 3 and 4 are the reverse passes'
    store_mask = valid[:, None] & (c < written)
    # no ray of the tile meets the bound: white, and no layer runs
    if BOUNDED and tl.max(_in_bound(x, valid, IN_PAD).to(tl.int32), axis=0) == 0:
        tl.store(out_ptr + rows[:, None] * out_ch + c,
                 tl.full((BLOCK_M, 4), 1.0, out_ptr.dtype.element_ty), mask=store_mask)
        return
    h = _layers(x.to(w_in_ptr.dtype.element_ty), rows, valid, masks_ptr, w_in_ptr, b_in_ptr,
                w_hid_ptr, b_hid_ptr, WIDTH, N_HIDDEN, MASKS, IN_PAD, BLOCK_M, CHUNKS)
    colors = ()
    for ch in tl.static_range(3):
        colors = colors + (tl.sigmoid(_head_row(h, w_out_ptr, b_out_ptr, ch, WIDTH, BLOCK_M, CHUNKS)),)
    values = tl.where(c == 0, colors[0][:, None], tl.where(c == 1, colors[1][:, None], colors[2][:, None]))
    values = tl.where(c == 3, 1.0, values)  # alpha; dropped by the mask when out_ch is 3
    if BOUNDED:  # the tile's rays again, not kept through the layers: rays outside the bound white
        inside = _in_bound(_ray_tile(rows, valid, rays_ptr, pose_ptr, frame_width, fx, fy, cx, cy,
                                     FUSED_RAYS, IN_PAD, BLOCK_M), valid, IN_PAD)
        values = tl.where(inside[:, None], values, 1.0)
    tl.store(out_ptr + rows[:, None] * out_ch + c, values.to(out_ptr.dtype.element_ty), mask=store_mask)


# The kernel's callees, by the global names it calls them with (models.triton_lfn binds them).
DEVICE_FUNCTIONS = {f.__name__: f for f in (_pixel_rays, _frame_tile, _ray_tile, _in_bound, _store_mask,
                                               _layers, _head_row)}
