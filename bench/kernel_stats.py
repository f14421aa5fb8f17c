"""Registers and spills of every fused kernel as compiled for a Hopper GPU, on a machine without one.

Triton compiles a kernel ahead of time for a named target, and its wheel carries NVIDIA's ptxas,
whose report says how many registers a thread uses and how many bytes it spills to local memory.
The fused kernels live at the 255-register limit (PERF.md), so this is the first look at a kernel
change where no GPU is at hand; it also catches code that Triton's CPU interpreter runs but its
compiler rejects. Speed is measured on the GPU (bench/gpu_check.py, `main.py --benchmark`).

    python -m bench.kernel_stats [--arch 90] [--json FILE]
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/kernel_stats.py` from anywhere

from engine.cli import OneLineParser, run_entry_point  # noqa: E402
from models import (  # noqa: E402
    triton_depth_kernels,
    triton_field,
    triton_field_kernel,
    triton_lfn,
    triton_lfn_kernel,
    triton_pool,
)
from models.lfn import LFNConfig  # noqa: E402
from models.volumetric import VolumetricConfig  # noqa: E402

try:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except ImportError:  # main() says so in one line
    triton = None

# The product's layer shape, the shipped checkpoint's: models/lfn.py's defaults.
WIDTH, N_HIDDEN = LFNConfig.width, LFNConfig.hidden_layers - 1


@dataclass(frozen=True)
class KernelBuild:
    """One kernel as a launch would specialize it: argument types, constants and warps."""

    name: str
    fn: object  # the triton.jit function
    signature: dict[str, str]  # argument → Triton type ("*fp16", "i32", "fp32")
    constants: dict[str, object]
    num_warps: int


@dataclass(frozen=True)
class KernelStats:
    registers: int
    spill_stores: int  # bytes a thread writes to local memory
    spill_loads: int


def compile_stats(build: KernelBuild, arch: int = 90) -> KernelStats:
    """Compile `build` for sm_`arch` and read ptxas's register and spill report."""
    signature = dict(build.signature, **{name: "constexpr" for name in build.constants})
    # Torch allocations are 16-byte aligned, and a launch tells the compiler so: pointers only.
    aligned = {(i,): [["tt.divisibility", 16]] for i, kind in enumerate(signature.values())
               if kind.startswith("*")}
    source = ASTSource(fn=build.fn, signature=signature, constexprs=build.constants, attrs=aligned)
    kernel = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                            options={"num_warps": build.num_warps, "num_stages": 1})
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    with tempfile.TemporaryDirectory() as folder:
        ptx = Path(folder) / "kernel.ptx"
        ptx.write_text(kernel.asm["ptx"])
        report = subprocess.run(
            [str(ptxas), f"-arch=sm_{arch}a", "-v", str(ptx), "-o", str(ptx.with_suffix(".cubin"))],
            capture_output=True, text=True, check=True,
        ).stderr

    def number(pattern: str) -> int:
        found = re.search(pattern, report)
        if found is None:
            raise RuntimeError(f"ptxas said nothing matching {pattern!r}:\n{report}")
        return int(found.group(1))

    return KernelStats(number(r"Used (\d+) registers"), number(r"(\d+) bytes spill stores"),
                       number(r"(\d+) bytes spill loads"))


def fused_kernel_builds() -> list[KernelBuild]:
    """Every kernel and tile configuration the GPU would compile for the product's network in fp16."""
    triton_lfn.bind_device_functions(interpret=False)
    scalars = {"fx": "fp32", "fy": "fp32", "cx": "fp32", "cy": "fp32"}
    layers = {"WIDTH": WIDTH, "N_HIDDEN": N_HIDDEN, "IN_PAD": triton_lfn_kernel.IN_PAD}
    mlp = triton.jit(triton_lfn_kernel._lfn_kernel)
    frame = {"FUSED_RAYS": True, "TILE_W": triton_lfn_kernel.FRAME_TILE_WIDTH}
    reverse = triton.jit(triton_depth_kernels._reverse_depth_kernel)
    builds = []
    # the viewer's colors (bounded by the unit sphere), every ray's colors, depth's masked colors
    for name, masks, bounded in (("colors", False, True), ("colors every ray", False, False),
                                 ("masked colors", True, False)):
        signature = {
            "out_ptr": "*fp32" if masks else "*fp16", "rays_ptr": "*fp32", "pose_ptr": "*fp32",
            "masks_ptr": "*u8", "w_in_ptr": "*fp16", "b_in_ptr": "*fp32", "w_hid_ptr": "*fp16",
            "b_hid_ptr": "*fp32", "w_out_ptr": "*fp32", "b_out_ptr": "*fp32",
            "n_rays": "i32", "out_ch": "i32", "frame_width": "i32", **scalars,
        }
        for block, warps, chunks in triton_lfn.TUNE_CONFIGS[triton_lfn.frame_pass(masks, bounded)]:
            builds.append(KernelBuild(
                f"{name} {block}x{warps}x{chunks}", mlp, signature,
                dict(layers, **frame, MASKS=masks, BOUNDED=bounded, BLOCK_M=block, CHUNKS=chunks), warps,
            ))
    signature = {
        "out_ptr": "*fp32", "pose_ptr": "*fp32", "masks_ptr": "*u8", "w_in_ptr": "*fp16",
        "w_hid_ptr": "*fp16", "w_out_ptr": "*fp32", "n_rays": "i32", "frame_width": "i32", **scalars,
        "channel": "i32", "skip_saturated": "i32",
    }
    for block, warps, chunks in triton_lfn.TUNE_CONFIGS["depth"]:
        builds.append(KernelBuild(f"reverse depth {block}x{warps}x{chunks}", reverse, signature,
                                  dict(layers, BLOCK_M=block, CHUNKS=chunks), warps))
    field = {"out_ptr": "*fp32", "origins_ptr": "*fp16", "dirs_ptr": "*fp16", "ray_ptr": "*i64",
             "t_ptr": "*fp16", "w_in_ptr": "*fp16", "b_in_ptr": "*fp32", "w_hid_ptr": "*fp16",
             "b_hid_ptr": "*fp32", "w_out_ptr": "*fp32", "b_out_ptr": "*fp32", "n_samples": "i32"}
    frequencies = VolumetricConfig.frequencies
    field_layers = {"FREQUENCIES": frequencies, "WIDTH": VolumetricConfig.width,
                    "N_HIDDEN": VolumetricConfig.hidden_layers - 1,
                    "IN_PAD": triton_field.input_pad(triton_field.encoded_width(frequencies))}
    field_kernel = triton.jit(triton_field_kernel._field_kernel)
    for block, warps, chunks in triton_lfn.TUNE_CONFIGS["field"]:
        builds.append(KernelBuild(f"field {block}x{warps}x{chunks}", field_kernel, field,
                                  dict(field_layers, BLOCK_M=block, CHUNKS=chunks), warps))
    pool = {"eq_ptr": "*fp32", "depth_ptr": "*fp32", "confidence_ptr": "*fp32", "width": "i32",
            "height": "i32", "inv_two_sigma2": "fp32"}
    builds.append(KernelBuild("pooled solve 5x5", triton.jit(triton_pool._pool_kernel), pool,
                              {"WINDOW": 5, "BLOCK": triton_pool.BLOCK}, 4))
    return builds


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 (H100/H200)")
    parser.add_argument("--json", type=Path, help="also write {kernel: stats} here")
    args = parser.parse_args(argv)
    return run_entry_point(lambda: report_kernels(args.arch, args.json), args.debug)


def report_kernels(arch: int, json_path: Path | None) -> int:
    """Registers and spills of every fused kernel on stdout (and in json_path); exit status 2
    without triton."""
    if triton is None:
        print("triton is not installed (pip install -r requirements-dev.txt)")
        return 2
    print(f"{'kernel':<28} {'registers':>9} {'spill stores':>12} {'spill loads':>11}  (sm_{arch})")
    results = {}
    for build in fused_kernel_builds():
        stats = results[build.name] = compile_stats(build, arch)
        print(f"{build.name:<28} {stats.registers:>9} {stats.spill_stores:>12} {stats.spill_loads:>11}")
    if json_path:
        json_path.write_text(json.dumps({name: asdict(s) for name, s in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
