"""Correctness and speed of the LFN render paths on a CUDA GPU, against the fp32 eager model.

    python bench/gpu_check.py [--res 512 1024] [--json PATH]

A random LFN of the default size (non-trivial latents and FiLM weights) renders orbit cameras
through: fp32 eager (the reference), TorchScript fp16 launch by launch and replayed from CUDA
graphs (the renderer's default on CUDA; each latent after the first checks that set_latent reaches
the captured graphs), torch.compile fp16 and the fused Triton kernel (models/triton_lfn.py), and
gradient depth's per-pixel equations (Σ a·b, Σ a² of models/depth.py) through the eager
forward-mode pass in fp16 and the kernel. Checks: relative error ‖out − ref‖/‖ref‖ ≤ 1e-2, no NaN,
every output element written (the output is poisoned first).
The depth equations are products of two derivatives of a ReLU network whose gates flip where a
pre-activation rounds across 0 in fp16, so any fp16 pass is off by a few percent: the eager fp16
pass's error is recorded, and the kernel's must stay ≤ 2e-2 or ≤ 1.25× that error on the frame.
Timings: CUDA events, one synchronized frame at a time as the viewer renders, median and p90
(also a fresh trace run with and without TorchScript's profiling-executor rewrites);
plus the arithmetic floor (network FLOPs at a measured fp16 matmul rate) and the memory floor (the
fp16 RGBA output at a measured copy bandwidth). Each variant is guarded: a failure prints its
error line and the others go on.
Triton runs last so that a kernel fault, which ends the CUDA context, loses only its own rows.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

os.environ.setdefault("TRITON_PRINT_AUTOTUNING", "1")  # prints each tuning's time and chosen config
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/gpu_check.py` from anywhere

from engine.cli import OneLineParser, run_entry_point
from engine.timing import median_p90, time_frames
from models.backends.torchscript import trace_ray_function, without_jit_optimizer
from models.cameras import orbit_pose
from models.depth import color_derivatives, gradient_depth, pixel_equations
from models.encoding import encoded_dim
from models.frame_graphs import FrameGraphs
from models.lfn import LFNConfig, LightFieldNetwork, ray_colors
from models.plucker import plucker
from models.renderer import LFNRenderer, capturable_frame
from models.resolution import Resolution
from models.triton_lfn import TritonLFN, triton_available

TOLERANCE = 1e-2
EQUATION_TOLERANCE = 2e-2
EAGER_FP16_MARGIN = 1.25
POISON = -7.0  # no color or alpha can be negative: any left after a frame was never written
LATENTS = 3
DEVICE = torch.device("cuda")


def build_model(seed: int = 0) -> LightFieldNetwork:
    """The default-size LFN with weights that make every layer and the modulation matter."""
    torch.manual_seed(seed)
    model = LightFieldNetwork(LFNConfig(num_instances=4))
    with torch.no_grad():
        for layer in model.net.layers:  # He init: activations keep their scale through depth
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        model.net.conditioning[-1].weight.normal_(std=0.05)  # FiLM gamma ≈ 1 ± 0.4, beta ≈ ± 0.4
        model.net.head.weight.mul_(4.0)  # logits of std ~2: colors spread over (0, 1), not all ≈ 0.5
        model.latents.weight.normal_()
    return model.to(DEVICE).eval()


def random_pose(gen: torch.Generator) -> torch.Tensor:
    az, el, radius = (torch.rand(3, generator=gen) * torch.tensor([360.0, 70.0, 1.5])).tolist()
    return orbit_pose(az, el - 10.0, radius + 2.5).to(DEVICE)


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """Errors of (N, 3 or 4) colors against (N, 3) fp32 reference colors."""
    out = out.float()
    unwritten = int((out == POISON).sum())
    rgb = out[:, :3]
    row = {
        "rel_err": float((rgb - ref).norm() / ref.norm()),
        "max_abs": float((rgb - ref).abs().max()),
        "nan": int(out.isnan().sum()),
        "unwritten": unwritten,
    }
    if out.shape[1] == 4:
        row["alpha_ok"] = bool((out[:, 3] == 1.0).all())
    row["ok"] = (row["rel_err"] <= TOLERANCE and row["nan"] == 0 and unwritten == 0
                 and row.get("alpha_ok", True))
    return row


def compare_equations(out: torch.Tensor, ref: tuple[torch.Tensor, ...], bound: float) -> dict:
    """Errors of (N, 5) colors and depth equations against the fp32 (colors, Σ a·b, Σ a²); the
    equations pass within `bound`."""
    color, ab, aa = ref
    errors = [float((out[:, i] - r).norm() / r.norm()) for i, r in ((3, ab), (4, aa))]
    row = {**compare(out[:, :3], color), "rel_err_ab": errors[0], "rel_err_aa": errors[1]}
    row["ok"] = row["ok"] and max(errors) <= bound
    return row


@torch.no_grad()
def eager_equations(renderer: LFNRenderer, pose: torch.Tensor, res: int,
                    summed: bool = False) -> torch.Tensor:
    """models/depth.py's eager pass in the renderer's precision, laid out like the kernel's output."""
    color, derivatives = color_derivatives(renderer, pose, res)
    return torch.cat([color, torch.stack(pixel_equations(derivatives, summed), -1)], -1)


def short(dtype: torch.dtype) -> str:
    return {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]


def attempt(name: str, errors: list[str], fn: Callable[[], object]) -> object | None:
    """Run one variant; on failure print and keep its first error line and go on."""
    try:
        return fn()
    except Exception as exc:  # any failure of one variant must not stop the others
        message = str(exc).strip().splitlines()
        line = f"{name}: {type(exc).__name__}: {message[0] if message else ''}"
        print("ERROR", line, flush=True)
        errors.append(line)
        return None


def matmul_tflops(dtype: torch.dtype = torch.float16, n: int = 8192, reps: int = 10) -> float:
    a, b = torch.randn(n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    end.synchronize()
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3) / 1e12


def copy_gbps(nbytes: int = 1 << 30, reps: int = 10) -> float:
    """Device-to-device copy bandwidth, bytes read plus bytes written."""
    src = torch.empty(nbytes // 4, device=DEVICE)
    dst = torch.empty_like(src)
    dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        dst.copy_(src)
    end.record()
    end.synchronize()
    return 2 * nbytes * reps / (start.elapsed_time(end) / 1e3) / 1e9


def network_macs(config: LFNConfig) -> int:
    """Multiply-adds per ray of the unpadded network: input layer, hidden layers, head."""
    w = config.width
    inputs = encoded_dim(config.in_dim, config.frequencies)
    return inputs * w + (config.hidden_layers - 1) * w * w + w * config.out_dim


def check_latent(
    index: int, model: LightFieldNetwork, eager: LFNRenderer, every_ray: LFNRenderer,
    renderers: dict[str, LFNRenderer], fused: TritonLFN | None, fused_bf16: TritonLFN | None,
    resolutions: list[int], gen: torch.Generator, errors: list[str],
) -> list[dict]:
    """Every variant against fp32 eager for one fresh latent: an orbit camera per resolution,
    and for the kernel also given random rays (no ray generation) and every ray of a frame
    evaluated (against `every_ray`, eager without the unit sphere's bound)."""
    latent = torch.randn(model.config.latent_dim, generator=gen).to(DEVICE)
    eager.set_latent(latent)
    every_ray.set_latent(latent)
    for renderer in renderers.values():
        renderer.set_latent(latent)
    kernels = [k for k in (fused, fused_bf16) if k is not None]
    for kernel in kernels:
        kernel.set_mlp_tensors(eager.folded_mlp())
    rows = []

    def add(name: str, res: int | None, ref, frame: Callable[[], torch.Tensor], check=compare) -> None:
        started = time.perf_counter()
        out = attempt(f"{name} @ {res}", errors, frame)
        if out is not None:
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started  # the first latent's include compiles and autotuning
            rows.append({"variant": name, "latent": index, "res": res, **check(out, ref),
                         "wall_s": seconds})

    for res in resolutions:
        pose = random_pose(gen)
        with torch.no_grad():
            ref = eager.render(pose, res).view(-1, 3)
        for name, renderer in renderers.items():
            add(name, res, ref, lambda r=renderer, p=pose, n=res: r.render(p, n).view(-1, 3))
        for kernel in kernels:
            for dtype in (torch.float16, torch.float32) if kernel is fused else (torch.float16,):
                out = torch.full((res * res, 4), POISON, device=DEVICE, dtype=dtype)
                name = f"triton {short(kernel.dtype)} → rgba {short(dtype)}"
                add(name, res, ref, lambda k=kernel, o=out, p=pose, n=res: k.render_rgba(p, n, out=o))
        if fused is not None:
            with torch.no_grad():
                every = every_ray.render(pose, res).view(-1, 3)
            add("triton fp16 every ray", res, every,
                lambda p=pose, n=res: fused.render_rgba(p, n, bounded=False)[:, :3])
        with torch.no_grad():
            color, derivatives = color_derivatives(eager, pose, res)
        for summed, kind in ((False, ""), (True, "summed ")):
            equations = (color, *pixel_equations(derivatives, summed))
            bound = EQUATION_TOLERANCE
            if "torchscript fp16" in renderers:  # its depth runs models/depth.py's eager pass
                add(f"{kind}depth equations eager fp16", res, equations,
                    check=lambda out, ref: compare_equations(out, ref, math.inf),  # the yardstick
                    frame=lambda p=pose, n=res, s=summed: eager_equations(
                        renderers["torchscript fp16"], p, n, s))
                if rows[-1]["variant"] == f"{kind}depth equations eager fp16":
                    eager_error = max(rows[-1]["rel_err_ab"], rows[-1]["rel_err_aa"])
                    bound = max(bound, EAGER_FP16_MARGIN * eager_error)
            if fused is not None:
                add(f"{kind}depth equations triton fp16", res, equations,
                    check=lambda out, ref, b=bound: compare_equations(out, ref, b),
                    frame=lambda p=pose, n=res, s=summed: fused.depth_equations(p, n, s))
    if fused is not None:
        origins = torch.randn(4099, 3, generator=gen).to(DEVICE) * 3.0  # 4099: a partial last tile
        rays = plucker(origins, torch.randn(4099, 3, generator=gen).to(DEVICE))
        with torch.no_grad():
            ref = ray_colors(rays, *eager.folded_mlp())
        add("triton fp16 colors(random rays)", None, ref, lambda: fused.colors(rays))
    return rows


def frame_variants(
    res: int, eager: LFNRenderer, renderers: dict[str, LFNRenderer], fused: TritonLFN | None,
) -> dict[str, Callable[[], Callable[[torch.Tensor], object]]]:
    """Name → a maker of one frame function (cam2world) at `res`; made lazily, inside its guard."""
    variants = {"eager fp32": lambda: lambda pose: eager.render(pose, res)}
    for name in ("torchscript fp16", "torchscript fp16 graph", "compile fp16"):
        if name in renderers:
            variants[name] = lambda r=renderers[name]: lambda pose: r.render(pose, res)
    if "torchscript fp16" in renderers:
        variants["depth eager fp16"] = lambda: depth_frame(renderers["torchscript fp16"], res)
        # The renderer runs TorchScript without the profiling executor's rewrites (models/renderer.py);
        # these pairs keep measuring that choice, launch by launch and from a CUDA graph.
        for graphed in (False, True):
            for optimizer in (True, False):
                graph = " graph" if graphed else ""
                name = f"traced fp16{graph}, jit optimizer {'on' if optimizer else 'off'}"
                variants[name] = lambda o=optimizer, g=graphed: traced_frame(
                    renderers["torchscript fp16"], res, o, g)
    if fused is not None:
        out = torch.empty(res * res, 4, device=DEVICE, dtype=torch.float16)
        variants["triton fused"] = lambda: lambda pose: fused.render_rgba(pose, res, out=out)
        variants["triton fused graph"] = lambda: graph_frame(
            FrameGraphs(lambda pose, n: lambda: fused.render_rgba(pose, n, out=out), DEVICE), res
        )
        variants["depth equations triton"] = lambda: lambda pose: fused.depth_equations(pose, res)
        variants["depth triton"] = lambda: depth_frame(triton_renderer(eager), res)
        variants["summed depth equations triton"] = (
            lambda: lambda pose: fused.depth_equations(pose, res, summed=True))
        variants["summed depth triton"] = lambda: depth_frame(triton_renderer(eager), res, True)
    return variants


def traced_frame(
    renderer: LFNRenderer, res: int, optimizer: bool, graphed: bool,
) -> Callable[[torch.Tensor], object]:
    """The renderer's latent through a fresh trace of the per-ray MLP, with or without TorchScript's
    profiling executor's rewrites, launch by launch or replayed from a CUDA graph."""
    traced = trace_ray_function(torch.randn(64, 6, device=renderer.device, dtype=renderer.dtype),
                                renderer.folded_mlp())
    function = traced if optimizer else without_jit_optimizer(traced)

    def colors(rays: torch.Tensor) -> torch.Tensor:
        return function(rays.to(renderer.dtype), *renderer.folded_mlp())

    def make_step(pose: torch.Tensor, n: int | Resolution) -> Callable[[], torch.Tensor]:
        return capturable_frame(pose, Resolution.of(n), colors)

    if graphed:
        return graph_frame(FrameGraphs(make_step, renderer.device), res)
    return lambda pose: make_step(pose.to(renderer.device), res)()


def depth_frame(renderer: LFNRenderer, res: int, summed: bool = False) -> Callable[[torch.Tensor], object]:
    return lambda pose: gradient_depth(renderer, pose, res, summed=summed)


def graph_frame(graphs: FrameGraphs, res: int) -> Callable[[torch.Tensor], object]:
    return lambda pose: graphs(pose, res)


def triton_renderer(eager: LFNRenderer) -> LFNRenderer:
    """An fp16 triton-backend renderer with the eager one's latent: gradient_depth's fused path."""
    renderer = LFNRenderer(eager.model, DEVICE, "fp16", "triton")
    renderer.ray_backend.set_mlp_tensors(eager.folded_mlp())
    return renderer


def time_variant(make: Callable[[], Callable[[torch.Tensor], object]], poses: list[torch.Tensor],
                 warmup: int) -> tuple[float, float]:
    frame = make()
    with torch.no_grad():
        for i in range(warmup):
            frame(poses[i % len(poses)])
        torch.cuda.synchronize()
        return median_p90(time_frames(frame, poses, DEVICE))


def floors_for(config: LFNConfig, resolutions: list[int], errors: list[str]) -> dict:
    rate = attempt("matmul rate", errors, matmul_tflops)
    bandwidth = attempt("copy bandwidth", errors, copy_gbps)
    macs = network_macs(config)
    floors = {"fp16_matmul_tflops": rate, "copy_gbps": bandwidth, "macs_per_ray": macs}
    for res in resolutions:
        if rate:
            floors[f"arithmetic_ms@{res}"] = 2 * macs * res * res / (rate * 1e12) * 1e3
        if bandwidth:  # the fp16 RGBA frame is the only traffic a fused kernel must make
            floors[f"memory_ms@{res}"] = res * res * 4 * 2 / (bandwidth * 1e9) * 1e3
    return floors


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, nargs="+", default=[512, 1024],
                        help="square frame sizes in pixels, each checked and timed (default 512 1024)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed frames before each variant's timing (default 20)")
    parser.add_argument("--reps", type=int, default=200,
                        help="timed frames of each variant, one per orbit camera (default 200)")
    args = parser.parse_args(argv)
    return run_entry_point(lambda: check(args.res, args.json, args.warmup, args.reps), args.debug)


def check(resolutions: list[int], json_path: Path | None, warmup: int, reps: int) -> int:
    """Every check and timing, the report, and --json; exit status 0 when every check passed, 2
    without a CUDA device."""
    if not torch.cuda.is_available():
        print("no CUDA device: this script runs on the GPU machine")
        return 2
    torch.set_float32_matmul_precision("highest")  # the reference is true fp32, not TF32
    ok, why = triton_available()
    env = {
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "triton": __import__("triton").__version__ if ok else f"unavailable: {why}",
    }
    print(env, flush=True)
    errors: list[str] = [] if ok else [f"triton: skipped: {why}"]
    model = build_model()
    eager = LFNRenderer(model, DEVICE, "fp32", "eager", cuda_graphs=False)  # the reference: plain
    every_ray = LFNRenderer(model, DEVICE, "fp32", "eager", cuda_graphs=False, bounded=False)
    renderers = {}
    for name, backend, graphs in (("torchscript fp16", "torchscript", False),
                                  ("torchscript fp16 graph", "torchscript", True),
                                  ("compile fp16", "compile", False)):
        renderer = attempt(name, errors, lambda b=backend, g=graphs: LFNRenderer(
            model, DEVICE, "fp16", b, cuda_graphs=g))
        if renderer is not None:
            renderers[name] = renderer
    fused = attempt("triton", errors, lambda: TritonLFN(eager.folded_mlp())) if ok else None
    fused_bf16 = attempt("triton bf16", errors, lambda: TritonLFN(eager.folded_mlp(), torch.bfloat16)) \
        if ok else None

    checks: list[dict] = []
    gen = torch.Generator().manual_seed(1)
    for index in range(LATENTS):
        rows = attempt(f"checks latent {index}", errors, lambda i=index: check_latent(
            i, model, eager, every_ray, renderers, fused, fused_bf16, resolutions, gen, errors))
        checks += rows or []
        print(*(rows or []), sep="\n", flush=True)

    timings: list[dict] = []
    poses = [orbit_pose(360.0 * i / reps, 20.0).to(DEVICE) for i in range(reps)]
    for res in resolutions:
        for name, make in frame_variants(res, eager, renderers, fused).items():
            times = attempt(f"{name} @ {res}", errors, lambda m=make: time_variant(m, poses, warmup))
            if times is not None:
                timings.append({"variant": name, "res": res, "median_ms": times[0], "p90_ms": times[1]})
                print(timings[-1], flush=True)

    floors = floors_for(model.config, resolutions, errors)
    print_report(env, checks, timings, floors, errors, resolutions)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({
            "env": env, "checks": checks, "timings": timings, "floors": floors,
            "errors": errors,
        }, indent=1))
        print(f"wrote {json_path}")
    return 0 if checks and all(row["ok"] for row in checks) else 1


def print_report(env: dict, checks: list[dict], timings: list[dict], floors: dict,
                 errors: list[str], resolutions: list[int]) -> None:
    print(f"\n== {env['gpu']}  torch {env['torch']}  CUDA {env['cuda']}  triton {env['triton']}")
    print("\nchecks (worst over latents and cameras):")
    print(f"{'variant':<30}{'res':>6}{'rel_err':>11}{'max_abs':>10}{'nan':>6}{'unwritten':>11}  ok")
    worst: dict[tuple, dict] = {}
    for row in checks:
        key = (row["variant"], row["res"])
        best = worst.get(key)
        worst[key] = {
            "rel_err": max(row["rel_err"], best["rel_err"]) if best else row["rel_err"],
            "max_abs": max(row["max_abs"], best["max_abs"]) if best else row["max_abs"],
            "nan": row["nan"] + (best["nan"] if best else 0),
            "unwritten": row["unwritten"] + (best["unwritten"] if best else 0),
            "ok": row["ok"] and (best["ok"] if best else True),
        }
    for (variant, res), row in worst.items():
        print(f"{variant:<30}{res if res else '-':>6}{row['rel_err']:>11.2e}{row['max_abs']:>10.2e}"
              f"{row['nan']:>6}{row['unwritten']:>11}  {'yes' if row['ok'] else 'NO'}")
    equations = [row for row in checks if "rel_err_ab" in row]
    if equations:
        print("\ndepth equations, worst relative error over latents (Σ a·b, Σ a²):")
        for variant, res in dict.fromkeys((row["variant"], row["res"]) for row in equations):
            rows = [row for row in equations if (row["variant"], row["res"]) == (variant, res)]
            print(f"{variant:<30}{res:>6}{max(r['rel_err_ab'] for r in rows):>11.2e}"
                  f"{max(r['rel_err_aa'] for r in rows):>11.2e}")
    print("\nper frame, ms (CUDA events):")
    print(f"{'variant':<30}" + "".join(f"{f'median@{r}':>14}{f'p90@{r}':>11}" for r in resolutions))
    for variant in dict.fromkeys(row["variant"] for row in timings):
        cells = ""
        for res in resolutions:
            row = next((t for t in timings if t["variant"] == variant and t["res"] == res), None)
            cells += f"{row['median_ms']:>14.3f}{row['p90_ms']:>11.3f}" if row else f"{'-':>14}{'-':>11}"
        print(f"{variant:<30}{cells}")
    for name in ("arithmetic", "memory"):
        values = [floors.get(f"{name}_ms@{r}", math.nan) for r in resolutions]
        print(f"{f'floor: {name}':<30}" + "".join(f"{v:>14.3f}{'':>11}" for v in values))
    rate, bandwidth = floors.get("fp16_matmul_tflops"), floors.get("copy_gbps")
    print(f"\nfloors: fp16 8192² matmul {rate or math.nan:.0f} TFLOP/s, D2D copy "
          f"{bandwidth or math.nan:.0f} GB/s (read + write), {floors['macs_per_ray']} MACs/ray")
    first = [row for row in checks if row["latent"] == 0 and row["variant"] != "torchscript fp16"]
    print("first frame, s (compiling and autotuning included):",
          ", ".join(f"{row['variant']} @ {row['res']}: {row['wall_s']:.1f}" for row in first))
    if errors:
        print("\nerrors:", *errors, sep="\n  ")


if __name__ == "__main__":
    sys.exit(main())
