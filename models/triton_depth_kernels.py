"""The reverse-mode kernel of gradient depth: after the frame kernel (models/triton_lfn_kernel.py)
ran with MASKS, pull each pixel's color derivative back through the stored ReLU masks to the 6
Plücker inputs and dot it with the 4 ray tangents: the depth equations of models/depth.py.

The device functions the kernel calls are plain Python here; models.triton_lfn binds them (jitted
for the compiler, plain for the interpreter) before the first launch.
"""

from __future__ import annotations

from models.triton_lfn_kernel import DEVICE_FUNCTIONS as FRAME_DEVICE_FUNCTIONS

try:
    import triton.language as tl
except ImportError:  # CPU-only installs: models.triton_lfn.triton_available() reports it
    tl = None

# The plain function, not the frame kernel module's global: each module binds its own callees.
_pixel_rays = FRAME_DEVICE_FUNCTIONS["_pixel_rays"]


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



def _reverse_depth_kernel(
    out_ptr, pose_ptr, masks_ptr, w_in_ptr, w_hid_ptr, w_out_ptr,
    n_rays, frame_width, fx, fy, cx, cy, channel, skip_saturated,
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
        origin, direction = _pixel_rays(rows, frame_width, fx, fy, cx, cy, pose_ptr)
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


# The kernel's callees, by the global names it calls them with (models.triton_lfn binds them).
DEVICE_FUNCTIONS = {f.__name__: f for f in (_pixel_rays, _ray_tangents, _load_mask, _slope)}
