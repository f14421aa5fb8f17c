"""The fused Triton LFN: the folded MLP packed for the kernels, and which kernel runs when.

The kernels live beside it: the frame kernel (rays, Plücker, every layer, colors; optionally every
layer's ReLU mask) in models/triton_lfn_kernel.py, the reverse passes of gradient depth in
models/triton_depth_kernels.py. This module binds their device functions, picks tile sizes
(autotuned on a GPU, fixed in the interpreter) and launches them.

    lfn = TritonLFN(renderer.folded_mlp())         # packs the weights once
    lfn.set_mlp_tensors(other_latent_tensors)      # new latent: copies into the same buffers
    lfn.render_rgba(cam2world, res, out=texture)   # (W*H, 4), nothing allocated per frame
    lfn.render_rgba(cam2world, res, bounded=False) # every ray evaluated, none whitened by the bound
    lfn.depth_equations(cam2world, res)            # (W*H, 5): r, g, b, Σ a·b, Σ a²
    lfn.depth_equations(cam2world, res, summed=True)  # the channel-summed equations: one pass less

The kernels see a frame as a flat batch of W*H rays, rows top to bottom: the frame's width alone
turns a ray's index into its pixel, and its intrinsics (models/cameras.py) give the aspect. A
program takes a run of BLOCK_M rays, except in a frame bounded by the unit sphere, where it takes a
tile of 16 × BLOCK_M / 16 pixels, so that the tiles outside the sphere are skipped whole. `res` is
a models.resolution.Resolution, or an int N for N × N.

Triton is optional: importing this module never needs it (the kernels are decorated on first
use), and triton_available() says why the backend can't run. Under TRITON_INTERPRET=1, set before
triton is first imported, the same kernels run on CPU tensors in Triton's interpreter (tests).
"""

from __future__ import annotations

import functools

import torch

from models import triton_depth_kernels, triton_field_kernel, triton_lfn_kernel
from models.cameras import intrinsics
from models.resolution import Resolution
from models.triton_depth_kernels import _reverse_depth_kernel
from models.triton_lfn_kernel import FRAME_TILE_WIDTH, IN_PAD, _lfn_kernel

try:
    import triton
except ImportError:  # CPU-only installs; triton_available() reports it
    triton = None

OPERAND_DTYPES = (torch.float16, torch.bfloat16)
OUTPUT_DTYPES = (torch.float16, torch.float32)
# The frame of a launch whose rays are given (colors()): the kernel reads no camera then.
RAYS_GIVEN = Resolution(1, 1)
# The interpreter runs programs one after another on the CPU: small tiles, and no autotuning.
INTERPRETER_META = {"BLOCK_M": 16, "CHUNKS": 2}


def triton_available() -> tuple[bool, str]:
    """(True, "") when the fused kernel can run on this machine, else (False, why not)."""
    if triton is None:
        return False, "triton is not installed"
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    return True, ""


def bind_device_functions(interpret: bool) -> None:
    """The compiler resolves a kernel's callees from its module's globals and needs them jitted;
    the interpreter runs a kernel as Python and calls the plain functions. (One process uses one
    of the two: tests interpret, a GPU compiles.)"""
    for module in (triton_lfn_kernel, triton_depth_kernels, triton_field_kernel):
        for name, fn in module.DEVICE_FUNCTIONS.items():
            setattr(module, name, fn if interpret else triton.jit(fn))


# (BLOCK_M, num_warps, CHUNKS) tried on a GPU, once per layer shape, ray source, output and
# dtypes. Colors, on an H100 at width 256 (1024² frame, kernel alone): (128, 8, 2) 1.46 ms,
# (64, 4, 2) 1.78, (128, 8, 4) 1.74, (64, 4, 4) 1.96; the two kept are the best with blocks valid
# from width 32. Depth's passes (colors with masks, and each reverse pass; 512²): (128, 8, 2)
# beat (64, 4, 2) for both, so only it is compiled, which halves the first depth frame's tuning.
# The volumetric field's kernel (models/triton_field_kernel.py): its wider input tile makes
# (128, 8, 2) spill 160 bytes (bench/kernel_stats.py), so it tries the three that do not.
# Colors bounded by the unit sphere (the viewer's frames) compile spill-free at (128, 8, 2) only:
# (64, 4, 2) spills 12 bytes there (bench/kernel_stats.py).
TUNE_CONFIGS = {"colors": ((128, 8, 2), (64, 4, 2)), "bounded": ((128, 8, 2),), "depth": ((128, 8, 2),),
                "field": ((64, 4, 2), (128, 8, 4), (64, 4, 4))}


def frame_pass(masks: bool, bounded: bool) -> str:
    """The TUNE_CONFIGS key of a frame kernel launch."""
    return "depth" if masks else "bounded" if bounded else "colors"


def _configs_for(configs: list, named_args: dict, **kwargs) -> list:
    """The autotuner's pruning hook: only the configs meant for this pass."""
    # the reverse kernel has neither flag: it always reads masks
    wanted = TUNE_CONFIGS[frame_pass(kwargs.get("MASKS", True), kwargs.get("BOUNDED", False))]
    return [c for c in configs if (c.kwargs["BLOCK_M"], c.num_warps, c.kwargs["CHUNKS"]) in wanted]


def _launchable(fn, interpret: bool, modes: tuple[str, ...], key: list[str], no_specialize: list[str]):
    """`fn` jitted, and the meta-parameters it is given: autotuned over the configs of `modes`
    on a GPU, INTERPRETER_META in the interpreter."""
    bind_device_functions(interpret)
    jitted = triton.jit(fn, do_not_specialize=no_specialize)
    if interpret:
        return jitted, INTERPRETER_META
    configs = [
        triton.Config({"BLOCK_M": bm, "CHUNKS": chunks}, num_warps=warps, num_stages=1)
        for bm, warps, chunks in dict.fromkeys(c for mode in modes for c in TUNE_CONFIGS[mode])
    ]
    # cache_results: the choice is kept on disk with the compiled kernels, so a later process
    # skips the benchmarking (the first tuning of a key compiles every config: ~10 s each).
    # A kernel of several modes (the frame kernel: colors, or colors and masks) prunes per launch.
    prune = {"early_config_prune": _configs_for} if len(modes) > 1 else None
    tuned = triton.autotune(configs, key=key, cache_results=True, prune_configs_by=prune)
    return tuned(jitted), {}


@functools.cache
def _kernel(interpret: bool):
    """The MLP kernel (colors, or colors and ReLU masks) and its meta-parameters."""
    return _launchable(_lfn_kernel, interpret, ("colors", "bounded", "depth"),
                       ["WIDTH", "N_HIDDEN", "FUSED_RAYS", "MASKS", "BOUNDED"],
                       ["n_rays", "out_ch", "frame_width"])


@functools.cache
def _reverse_kernel(interpret: bool):
    """The reverse pass of the depth equations and its meta-parameters."""
    return _launchable(_reverse_depth_kernel, interpret, ("depth",), ["WIDTH", "N_HIDDEN"],
                       ["n_rays", "frame_width", "channel", "skip_saturated"])


def _supported_width(value: int) -> bool:
    """A power of two (tl.arange) of at least 32: two column blocks of tl.dot's minimum 16."""
    return value >= 32 and value & (value - 1) == 0


class PackedMLP:
    """A folded MLP (models/mlp.py's tensors) in the fused kernels' layout, in preallocated buffers:
    input and hidden weights transposed to (K, N), N contiguous, in the operand `dtype`, the input
    layer's K padded with zeros to `in_pad`; the head (outputs, W) and all biases in fp32."""

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype, in_pad: int):
        if dtype not in OPERAND_DTYPES:
            raise ValueError(f"operand dtype must be float16 or bfloat16, not {dtype}")
        w_in, _, w_hidden, _, w_out, _ = mlp_tensors
        width, self.inputs = w_in.shape
        if not _supported_width(width) or self.inputs > in_pad:
            raise ValueError(f"needs at most {in_pad} inputs and a power-of-two width ≥ 32; got in "
                             f"{self.inputs}, width {width}")
        device = w_in.device
        self.width, self.hidden, self.outputs = width, w_hidden.shape[0], w_out.shape[0]
        self.dtype, self.device = dtype, device
        self.w_in = torch.zeros(in_pad, width, dtype=dtype, device=device)
        self.b_in = torch.zeros(width, dtype=torch.float32, device=device)
        self.w_hid = torch.zeros(self.hidden, width, width, dtype=dtype, device=device)
        self.b_hid = torch.zeros(self.hidden, width, dtype=torch.float32, device=device)
        self.w_out = torch.zeros(self.outputs, width, dtype=torch.float32, device=device)
        self.b_out = torch.zeros(self.outputs, dtype=torch.float32, device=device)
        self.set(mlp_tensors)

    @torch.no_grad()
    def set(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        """Re-pack another latent's folded tensors into the same buffers: nothing is allocated."""
        w_in, b_in, w_hidden, b_hidden, w_out, b_out = mlp_tensors
        if w_hidden.shape != self.w_hid.shape or w_in.shape[1] != self.inputs:
            raise ValueError(f"hidden weights {tuple(w_hidden.shape)} on {w_in.shape[1]} inputs don't match "
                             f"{tuple(self.w_hid.shape)} on {self.inputs}")
        self.w_in[:self.inputs].copy_(w_in.t())
        self.b_in.copy_(b_in)
        self.w_hid.copy_(w_hidden.transpose(1, 2))
        self.b_hid.copy_(b_hidden)
        self.w_out.copy_(w_out)
        self.b_out.copy_(b_out)

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The kernels' weight arguments, in their order."""
        return self.w_in, self.b_in, self.w_hid, self.b_hid, self.w_out, self.b_out


class TritonLFN:
    """The folded per-ray MLP packed for the fused kernels (PackedMLP; 6 Plücker inputs, 3 colors)."""

    def __init__(self, mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype = torch.float16):
        w_in, _, _, _, w_out, _ = mlp_tensors
        if w_in.shape[1] != 6 or w_out.shape[0] != 3:
            raise ValueError(f"needs 6 inputs and 3 outputs; got in {w_in.shape[1]}, out {w_out.shape[0]}")
        self.mlp = PackedMLP(mlp_tensors, dtype, IN_PAD)
        self.width, self.hidden = self.mlp.width, self.mlp.hidden
        self.dtype, self.device = dtype, self.mlp.device
        self._pose = torch.zeros(3, 4, dtype=torch.float32, device=self.device)
        self._masks = torch.empty(0, dtype=torch.uint8, device=self.device)  # depth's ReLU masks, as bits

    def set_mlp_tensors(self, mlp_tensors: tuple[torch.Tensor, ...]) -> None:
        """Re-pack a latent's folded tensors into the existing buffers: nothing is allocated."""
        self.mlp.set(mlp_tensors)

    def _launch(self, out: torch.Tensor, n_rays: int, out_ch: int, res: Resolution = RAYS_GIVEN,
                rays: torch.Tensor | None = None, masks: torch.Tensor | None = None,
                bounded: bool = False) -> None:
        """Rays from the camera in self._pose for a frame of `res` when `rays` is None, else from
        `rays`; `masks` also stores every layer's ReLU mask there (bits) for _reverse_depth_kernel.
        `bounded`: rays that miss the unit sphere are white (no masks are stored for them)."""
        if bounded and masks is not None:
            raise ValueError("a bounded launch skips tiles, whose ReLU masks the depth passes need")
        kernel, fixed = _kernel(bool(triton.knobs.runtime.interpret))
        if rays is None and bounded:  # tiles of FRAME_TILE_WIDTH × (BLOCK_M / FRAME_TILE_WIDTH) pixels
            def grid(meta):
                return (triton.cdiv(res.width, FRAME_TILE_WIDTH)
                        * triton.cdiv(res.height, meta["BLOCK_M"] // FRAME_TILE_WIDTH),)
        else:
            def grid(meta):
                return (triton.cdiv(n_rays, meta["BLOCK_M"]),)
        kernel[grid](
            out, self._pose if rays is None else rays, self._pose,
            self._pose if masks is None else masks, *self.mlp.tensors,
            n_rays, out_ch, res.width, *_camera(res),
            WIDTH=self.width, N_HIDDEN=self.hidden, FUSED_RAYS=rays is None,
            MASKS=masks is not None, BOUNDED=bounded, IN_PAD=IN_PAD, TILE_W=FRAME_TILE_WIDTH, **fixed,
        )

    @torch.no_grad()
    def render_rgba(
        self, cam2world: torch.Tensor, res: Resolution | int, out: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float16, bounded: bool = True,
    ) -> torch.Tensor:
        """A W×H frame as (W*H, 4) RGBA, alpha 1, rows top to bottom.

        `out`, when given, is written in place (float16 or float32, contiguous, W*H*4 values,
        e.g. a mapped GL texture); then the frame allocates nothing. `dtype` is for a new `out`.
        `bounded`: rays that miss the unit sphere are white without an evaluation
        (models.plucker.meets_unit_sphere); False evaluates every ray.
        """
        res = Resolution.of(res)
        if out is None:
            out = torch.empty(res.pixels, 4, dtype=dtype, device=self.device)
        if out.dtype not in OUTPUT_DTYPES or not out.is_contiguous() or out.numel() != res.pixels * 4:
            raise ValueError(f"out must be a contiguous float16/float32 tensor of {res.pixels * 4} values")
        self._pose.copy_(cam2world[:3, :4])  # read on the device: a CUDA graph replays new poses
        self._launch(out, res.pixels, 4, res, bounded=bounded)
        return out.view(res.pixels, 4)

    @torch.no_grad()
    def render(self, cam2world: torch.Tensor, res: Resolution | int, bounded: bool = True) -> torch.Tensor:
        """(H, W, 3) colors in the operand dtype: the renderer interface (`bounded` as render_rgba's)."""
        res = Resolution.of(res)
        out = torch.empty(res.height, res.width, 3, dtype=self.dtype, device=self.device)
        self._pose.copy_(cam2world[:3, :4])
        self._launch(out, res.pixels, 3, res, bounded=bounded)
        return out

    @torch.no_grad()
    def depth_equations(self, cam2world: torch.Tensor, res: Resolution | int, summed: bool = False,
                        out: torch.Tensor | None = None, skip_saturated: bool = True) -> torch.Tensor:
        """(W*H, 5) float32: each pixel's color and its gradient-depth equations Σ a·b, Σ a²
        (models/depth.py's pixel_equations, per channel or `summed`), written into `out` when
        given (float32, contiguous, that shape). `skip_saturated` False runs the reverse passes
        on every tile, to time what the skip saves (bench/depth_skip.py); the output is the same.

        One color pass that keeps every ReLU mask, then reverse passes that pull a color's
        derivative back to the 6 ray inputs: one per channel, or one for the channels' sum.
        Each pass runs one stream through the layers at the colors kernel's tile size, where
        carrying the 4 ray tangents forward beside the colors needed 5 streams in small tiles.
        """
        res = Resolution.of(res)
        n_rays = res.pixels
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
                out, self._pose, self._masks, self.mlp.w_in, self.mlp.w_hid, self.mlp.w_out,
                n_rays, res.width, *_camera(res), channel, int(skip_saturated),
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
def _camera(res: Resolution) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of models.cameras.intrinsics for a frame of `res`, cached per resolution."""
    k = intrinsics(res.width, res.height)
    return float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
