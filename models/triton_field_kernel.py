"""The fused kernel of the volumetric baseline's samples: a sample's ray and distance → its 3-D point
→ positional encoding → every layer of the folded MLP → the 4 raw outputs.

One program takes BLOCK_M samples, each a ray index and a distance along that ray: it gathers the
ray's origin and direction, builds the network input of models/volumetric.py's sample_inputs
(the point, the sines and cosines of its octaves, the direction) in fp32 on chip, and runs the
layers of models/triton_lfn_kernel.py (fp16 or bf16 operands, fp32 accumulation). Only the raw
outputs (density and RGB before models.volumetric.decode_samples) reach global memory, where the
eager path writes every layer's activations. models/triton_field.py launches it.
"""

from __future__ import annotations

from models.triton_lfn_kernel import DEVICE_FUNCTIONS as MLP_DEVICE_FUNCTIONS

try:
    import triton.language as tl
except ImportError:  # CPU-only installs: models.triton_lfn.triton_available() reports it
    tl = None

# The plain functions, not the frame kernel module's globals: each module binds its own callees.
_layers = MLP_DEVICE_FUNCTIONS["_layers"]
_head_row = MLP_DEVICE_FUNCTIONS["_head_row"]


def _encoded_samples(origins_ptr, dirs_ptr, ray_ptr, t_ptr, rows, valid,
                     FREQUENCIES: tl.constexpr, IN_PAD: tl.constexpr):
    """The (BLOCK_M, IN_PAD) fp32 input tile of samples `rows`: columns as sample_inputs orders
    them (x, y, z; sin of x, y, z at octave 0, 1, …; the same cosines; the direction), zeros after."""
    ray = tl.load(ray_ptr + rows, mask=valid, other=0)
    t = tl.load(t_ptr + rows, mask=valid, other=0.0).to(tl.float32)
    ox = tl.load(origins_ptr + ray * 3, mask=valid, other=0.0).to(tl.float32)
    oy = tl.load(origins_ptr + ray * 3 + 1, mask=valid, other=0.0).to(tl.float32)
    oz = tl.load(origins_ptr + ray * 3 + 2, mask=valid, other=0.0).to(tl.float32)
    dx = tl.load(dirs_ptr + ray * 3, mask=valid, other=0.0).to(tl.float32)
    dy = tl.load(dirs_ptr + ray * 3 + 1, mask=valid, other=0.0).to(tl.float32)
    dz = tl.load(dirs_ptr + ray * 3 + 2, mask=valid, other=0.0).to(tl.float32)
    col = tl.arange(0, IN_PAD)[None, :]
    SINES: tl.constexpr = 3 + 3 * FREQUENCIES  # the first cosine's column
    DIRECTION: tl.constexpr = 3 + 6 * FREQUENCIES  # the direction's first column
    angle_index = tl.where(col < SINES, col - 3, col - SINES)  # within the sines or the cosines
    axis = tl.where(col < 3, col, tl.where(col < DIRECTION, angle_index % 3, col - DIRECTION))
    point = tl.where(axis == 0, (ox + t * dx)[:, None],
                     tl.where(axis == 1, (oy + t * dy)[:, None], (oz + t * dz)[:, None]))
    direction = tl.where(axis == 0, dx[:, None], tl.where(axis == 1, dy[:, None], dz[:, None]))
    # octave k scales by 2^k π; columns before the sines have no octave (their angle is unused); a
    # cosine is the sine a quarter turn on, so one sine serves both blocks
    octave = tl.exp2(tl.maximum(angle_index // 3, 0).to(tl.float32))
    angle = point * (octave * 3.141592653589793) + tl.where(col < SINES, 0.0, 1.5707963267948966)
    encoded = tl.where(col < 3, point, tl.where(col < DIRECTION, tl.sin(angle), direction))
    return tl.where(col < DIRECTION + 3, encoded, 0.0)


def _field_kernel(
    out_ptr, origins_ptr, dirs_ptr, ray_ptr, t_ptr,
    w_in_ptr, b_in_ptr, w_hid_ptr, b_hid_ptr, w_out_ptr, b_out_ptr,
    n_samples,
    FREQUENCIES: tl.constexpr, WIDTH: tl.constexpr, N_HIDDEN: tl.constexpr, IN_PAD: tl.constexpr,
    BLOCK_M: tl.constexpr, CHUNKS: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    valid = rows < n_samples
    x = _encoded_samples(origins_ptr, dirs_ptr, ray_ptr, t_ptr, rows, valid, FREQUENCIES, IN_PAD)
    h = _layers(x.to(w_in_ptr.dtype.element_ty), rows, valid, out_ptr, w_in_ptr, b_in_ptr, w_hid_ptr,
                b_hid_ptr, WIDTH, N_HIDDEN, False, IN_PAD, BLOCK_M, CHUNKS)
    for ch in tl.static_range(4):  # density, then RGB, before decode_samples
        raw = _head_row(h, w_out_ptr, b_out_ptr, ch, WIDTH, BLOCK_M, CHUNKS)
        tl.store(out_ptr + rows * 4 + ch, raw, mask=valid)


# The kernel's callees, by the global names it calls them with (models.triton_lfn binds them).
DEVICE_FUNCTIONS = {f.__name__: f for f in (_encoded_samples, _layers, _head_row)}
