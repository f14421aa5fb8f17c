"""Depth from light-field gradients, and what follows from depth: normals and point clouds.

Derivation (see DEPTH.md for the figure in words). Take a pixel's ray with origin o (the camera
center), unit direction d, and a unit vector u perpendicular to d. In a local two-plane
parameterization (plane 1 through o, plane 2 a distance D further along d, offsets s and t along
u) the ray through (s, t) starts at o + s·u with direction D·d + (t − s)·u. A surface point at
distance z along the ray is seen by exactly the rays with s·(D − z) + t·z = 0, a line in the
(s, t) epipolar-plane image along which the color is constant (Lambertian surface), so

    z = D · (∂c/∂t) / (∂c/∂s + ∂c/∂t).

Here ∂c/∂s + ∂c/∂t is the derivative for a lateral *shift* of the ray along u (direction kept)
and D·∂c/∂t the derivative for a *rotation* of the ray about the camera center toward u, so D
cancels: z = (∂c/∂θ) / (∂c/∂x). Both derivatives are exact derivatives of the network along 4
ray tangents (shift and rotation along the image's right and down vectors): here one forward-mode
pass carries the 4 tangents; the Triton backend gets the same numbers in reverse mode, pulling
each color's derivative back to the 6 ray inputs and dotting it with the tangents.
Units: z is a distance in world units along the ray from the camera center, positive
in front of the camera, the same quantity as the data set's ground-truth `depth`.

Every color channel and both image axes give one equation a·z = b; a pixel's own least-squares
depth is Σ a·b / Σ a². Pixels are pooled over a small window whose neighbours are weighted by
color similarity (edge-aware), since a pixel and its same-surface neighbours share (almost) the
same depth, and each by its gradient norm |a| = √Σ a² (not Σ a², the plain least squares of the
pooled equations: the strongest edges, whose depth is the most biased on the trained cars, would
outvote their window). The pooled |a| is the confidence: where the color is flat there is nothing
to measure, and the pixel is marked invalid instead of guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.mlp import in_row_buckets, mlp_forward
from models.plucker import plucker
from models.renderer import CPU_SLICE_RAYS, frame_rays, give_up_if
from models.renderer_protocol import GradientDepth
from models.resolution import Resolution

TANGENT_STREAMS = 5  # the primal and the 4 ray tangents, stacked in one pass


@dataclass
class DepthResult:
    depth: torch.Tensor  # (H, W) distance along the ray from the camera center; 0 where invalid
    valid: torch.Tensor  # (H, W) bool
    confidence: torch.Tensor  # (H, W) pooled gradient norm √Σ a²
    color: torch.Tensor  # (H, W, 3) the frame's colors, from the same pass


def mlp_forward_with_tangents(
    x: torch.Tensor, tangents: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor,
    w_hidden: torch.Tensor, b_hidden: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """models.mlp.mlp_forward plus its exact directional derivatives (forward mode).

    x (N, in), tangents (T, N, in) → output (N, out), output tangents (T, N, out). The primal and
    the tangents stay stacked as one (T+1, N, ·) tensor, so each layer is one matrix product, the
    bias goes to the primal alone, and the primal's ReLU gate zeroes all T+1 in place.
    """
    h = torch.cat([x[None], tangents])

    def layer(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor, relu: bool) -> torch.Tensor:
        z = (h.flatten(0, 1) @ w.t()).view(h.shape[0], h.shape[1], -1)
        z[0] += b
        if relu:  # masked_fill, not a product with the gate: an overflowed inf times 0 is NaN
            z.masked_fill_(~(z[0] > 0), 0.0)
        return z

    h = layer(h, w_in, b_in, True)
    for i in range(w_hidden.shape[0]):
        h = layer(h, w_hidden[i], b_hidden[i], True)
    out = layer(h, w_out, b_out, False)
    return out[0], out[1:]


def ray_tangents(origins: torch.Tensor, dirs: torch.Tensor, right: torch.Tensor,
                 down: torch.Tensor) -> torch.Tensor:
    """Plücker-space tangents (4, N, 6): shift along right, rotate toward right, same for down.

    For P = (d, o × d): shifting o by u gives dP = (0, u × d); rotating d toward a unit u ⊥ d
    about o gives dP = (u, o × u).
    """
    tangents = []
    for axis in (right, down):
        u = F.normalize(axis - (axis * dirs).sum(-1, keepdim=True) * dirs, dim=-1)
        zero = torch.zeros_like(u)
        tangents.append(torch.cat([zero, torch.linalg.cross(u, dirs, dim=-1)], -1))
        tangents.append(torch.cat([u, torch.linalg.cross(origins, u, dim=-1)], -1))
    return torch.stack(tangents)


def color_derivatives(renderer, cam2world: torch.Tensor, res: Resolution | int,
                      abandon: Callable[[], bool] | None = None):
    """Colors (N, 3) and derivatives (4, N, 3) of one frame's rays, in the renderer's precision.

    Where all three colors saturated (sigmoid' exactly 0: an object's white background) the
    derivatives are exactly 0, so the tangent pass, 4 streams beside the primal, runs on the other
    rays only: about a quarter of a car frame's (DEPTH.md has the times). Both passes go in chunks
    of the renderer's rays_per_chunk, the tangent pass's TANGENT_STREAMS times smaller, so a CPU
    frame keeps to the renderer's working-memory budget; on a CPU each chunk goes in slices cut from
    its start, as a CPU frame's colors do (models.renderer.ray_colors), of CPU_SLICE_RAYS rows (a
    tangent pass's ray is TANGENT_STREAMS rows): in the caches they run faster than the whole chunk
    and give the same values (tests/test_frame_abandon.py). `abandon` is asked before each slice of
    either pass (models.renderer.give_up_if).
    """
    mlp_tensors = renderer.folded_mlp()
    origins, dirs = frame_rays(cam2world, res, renderer.device)
    rays = plucker(origins, dirs).to(mlp_tensors[0].dtype)
    step = renderer.rays_per_chunk
    slice_rays = min(step, CPU_SLICE_RAYS) if renderer.device.type == "cpu" else step
    colors = []
    for chunk in rays.split(step):
        for rays_slice in chunk.split(slice_rays):
            give_up_if(abandon)
            logits = in_row_buckets(lambda x: mlp_forward(x, *mlp_tensors), rays_slice, rays.dtype)
            colors.append(torch.sigmoid(logits.float()))
    color = torch.cat(colors)
    slope = color * (1 - color)
    derivatives = torch.zeros(4, *color.shape, device=color.device)
    live = (slope > 0).any(1).nonzero()[:, 0]
    pose = cam2world.to(renderer.device, torch.float32)
    step, slice_rays = max(1, step // TANGENT_STREAMS), max(1, slice_rays // TANGENT_STREAMS)

    def logit_tangents(ray_ids: torch.Tensor) -> torch.Tensor:
        """(n, 4, 3): the logits' derivatives along each ray's 4 tangents, ray by ray."""
        tangents = ray_tangents(origins[ray_ids], dirs[ray_ids], pose[:3, 0].expand(len(ray_ids), 3),
                                pose[:3, 1].expand(len(ray_ids), 3))
        _, dlogits = mlp_forward_with_tangents(rays[ray_ids], tangents.to(rays.dtype), *mlp_tensors)
        return dlogits.transpose(0, 1)

    for chunk in live.split(step):
        for ray_ids in chunk.split(slice_rays):
            give_up_if(abandon)
            # a view's live rays are a new count every frame: on a CPU in bf16 they share a few
            dlogits = in_row_buckets(logit_tangents, ray_ids, rays.dtype).transpose(0, 1)
            derivatives[:, ray_ids] = slope[ray_ids][None] * dlogits.float()
    return color, derivatives


def box_pool(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a window × window neighbourhood; x (C, H, W)."""
    return F.avg_pool2d(x[None], window, stride=1, padding=window // 2,
                        count_include_pad=False)[0] * window * window


def pixel_equations(derivatives: torch.Tensor, summed: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel's equations a·z = b summed over channels and both axes: (Σ a·b, Σ a²), (N,) each.

    derivatives (4, N, 3) ordered shift-right, rotate-right, shift-down, rotate-down. `summed`
    first adds the 3 channels' derivatives into one (a sum of valid equations is valid): one
    equation per axis instead of three, which one reverse-mode pass gives for the whole frame
    (TritonLFN.depth_equations). Where channels change in opposite directions the sum
    loses that edge; on the cars the median error rises by ~4 % of itself (DEPTH.md).
    """
    if summed:
        derivatives = derivatives.sum(-1, keepdim=True)
    a, b = derivatives[0::2], derivatives[1::2]
    return (a * b).sum((0, 2)), (a * a).sum((0, 2))


def solve_depth(color: torch.Tensor, ab: torch.Tensor, aa: torch.Tensor, res: Resolution | int,
                window: int = 5, color_sigma: float = 0.1, min_confidence: float = 0.03) -> DepthResult:
    """Depth from pixel_equations: each pixel's Σ a·b / Σ a², averaged edge-aware over a window
    with weights |a| = √Σ a².

    color (N, 3), ab and aa (N,), for a frame of `res` (N = W*H, rows top to bottom). Weighting by
    |a| rescales each pixel's equations by 1 / |a| before the pooling, which is then the plain
    pooled Σ a·b / Σ a²: on CUDA one Triton kernel (models/triton_pool.py), elsewhere
    pool_equations.
    """
    res = Resolution.of(res)
    norm = aa.float().sqrt()
    ab, aa = ab.float() / norm.clamp(min=1e-12), norm
    if window > 1 and color.is_cuda and (pool := _pool_kernel()) is not None:
        equations = torch.cat([color.float(), ab[:, None], aa[:, None]], 1)
        depth, confidence = pool(equations, res, window, color_sigma)
    else:
        ab, confidence = pool_equations(color, ab, aa, res, window, color_sigma)
        depth = ab / confidence.clamp(min=1e-12)
    valid = (confidence > min_confidence) & (depth > 0) & torch.isfinite(depth)
    return DepthResult(torch.where(valid, depth, 0.0), valid, confidence,
                       color.view(res.height, res.width, 3))


def _pool_kernel():
    """models.triton_pool.pooled_solve where triton is installed, else None. Imported on first use
    on CUDA only: importing triton costs a second, and CPU runs (and the interpreter tests, which
    must import it themselves first) never need it."""
    from models.triton_pool import pool_available, pooled_solve

    return pooled_solve if pool_available() else None


def pool_equations(color: torch.Tensor, ab: torch.Tensor, aa: torch.Tensor, res: Resolution | int,
                   window: int, color_sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ a·b and Σ a² (H, W) summed over each pixel's window × window neighbours, every
    neighbour weighted by its color similarity (edge-aware), the frame's border replicated."""
    res = Resolution.of(res)
    shape = (res.height, res.width)
    image = color.float().view(*shape, 3).permute(2, 0, 1)
    ab, aa = ab.float().view(1, *shape), aa.float().view(1, *shape)
    if window == 1:
        return ab[0], aa[0]
    pad = window // 2
    padded = F.pad(torch.cat([image, ab, aa]), (pad, pad, pad, pad), mode="replicate")
    patches = padded.unfold(1, window, 1).unfold(2, window, 1)  # (5, H, W, k, k)
    similarity = torch.exp(-((patches[:3] - image[..., None, None]) ** 2).sum(0) / (2 * color_sigma**2))
    return (patches[3] * similarity).sum((-1, -2)), (patches[4] * similarity).sum((-1, -2))


def depth_equations(
    renderer, cam2world: torch.Tensor, res: Resolution | int, summed: bool = False,
    abandon: Callable[[], bool] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Colors (N, 3) and pixel_equations (Σ a·b, Σ a²) of one frame: from the renderer's fused
    reverse-mode kernels where its capabilities say so (one pass: `abandon` is not asked), else
    from the eager forward-mode pass over its folded MLP."""
    res = Resolution.of(res)
    if renderer.capabilities.gradient_depth is GradientDepth.FUSED_REVERSE:
        return renderer.fused_depth_equations(cam2world, res, summed)
    color, derivatives = color_derivatives(renderer, cam2world, res, abandon)
    return (color, *pixel_equations(derivatives, summed))


@torch.no_grad()
def gradient_depth(renderer, cam2world: torch.Tensor, res: Resolution | int, window: int = 5,
                   min_confidence: float = 0.03, summed: bool = False,
                   abandon: Callable[[], bool] | None = None) -> DepthResult:
    """Depth of every pixel of a frame from the LFN alone (its current latent); `summed` uses
    the channel-summed equations (pixel_equations). `abandon` is asked before each slice of the
    network passes (color_derivatives) and once before the pooled solve: True gives the frame up
    (FrameAbandoned)."""
    color, ab, aa = depth_equations(renderer, cam2world, res, summed, abandon)
    give_up_if(abandon)
    return solve_depth(color, ab, aa, res, window=window, min_confidence=min_confidence)


def depth_to_points(depth: torch.Tensor, cam2world: torch.Tensor, res: Resolution | int) -> torch.Tensor:
    """(H, W) distances along the pixel rays → world points (H, W, 3)."""
    origins, dirs = frame_rays(cam2world, res, depth.device)
    return (origins + depth.reshape(-1, 1) * dirs).view(*depth.shape, 3)


def normals_from_depth(
    depth: torch.Tensor, valid: torch.Tensor, cam2world: torch.Tensor, res: Resolution | int,
    smoothing: int = 9, step: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space unit normals (H, W, 3) facing the camera, and where they are defined (H, W).

    Differences of the back-projected points `step` pixels apart on each side, after averaging the
    points over the valid pixels of a smoothing window: per-pixel gradient depth is noisy, and a
    normal differentiates it once more (an average of points on a plane stays on that plane, so
    flat surfaces keep exact normals). A normal needs its 4 neighbours valid. The defaults suit
    the LFN's depth, whose errors are blobs ~10 pixels wide: against the cars' mesh normals at
    128², median error 13.4° instead of 17.4° with 5 and 2, at the price of rounder creases
    (ground-truth depth: 5.5° instead of 3.1°; DEPTH.md).
    """
    weight = valid.float()[None]
    raw = depth_to_points(torch.where(valid, depth.float(), 0.0), cam2world.float(), res)
    points = (box_pool(raw.permute(2, 0, 1) * weight, smoothing)
              / box_pool(weight, smoothing).clamp(min=1e-6)).permute(1, 2, 0)
    du = torch.zeros_like(points)
    dv = torch.zeros_like(points)
    du[:, step:-step] = points[:, 2 * step:] - points[:, :-2 * step]
    dv[step:-step] = points[2 * step:] - points[:-2 * step]
    normals = F.normalize(torch.linalg.cross(dv, du, dim=-1), dim=-1)
    to_camera = cam2world[:3, 3].to(points) - points
    flip = (normals * to_camera).sum(-1, keepdim=True) < 0
    normals = torch.where(flip, -normals, normals)
    ok = valid.clone()
    ok[:, step:-step] &= valid[:, 2 * step:] & valid[:, :-2 * step]
    ok[step:-step] &= valid[2 * step:] & valid[:-2 * step]
    ok[:step] = ok[-step:] = False
    ok[:, :step] = ok[:, -step:] = False
    return torch.where(ok[..., None], normals, 0.0), ok
