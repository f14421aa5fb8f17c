"""The AOTInductor backend: the exported per-ray program (models/backends/export.py) compiled ahead
of time into a .pt2 package of native code, loaded with torch._inductor.aoti_load_package.

AOTInductor turns the torch.export program into C++ (on CUDA, Triton kernels with a C++ launcher)
and builds it with the machine's C++ compiler; frames then run without Python op dispatch or an
interpreter. As in the export, the ray count is symbolic and the folded MLP tensors are inputs, so
swapping or blending latents never recompiles.

A compile takes seconds (12 s for the shipped network on 2 CPU cores), so packages are kept: the
first renderer compiles into the package cache (`package_cache()`), later ones, in this process or
the next, load the saved package in milliseconds. A package's name is a digest of everything its
native code depends on: the exported graph, the tensors' shapes and dtype, the device, torch's
version, the host, and the CPU thread count Inductor builds its CPU kernels for.

A package is loaded in a child process once before this process loads it: on the H100 with torch
2.11 (CUDA 13.0) loading a CUDA package crashed the process (SIGSEGV inside aoti_load_package,
every time, 2026-12-05), and a crash cannot be caught. The verdict is kept beside the package, so
the check costs one child per package, and a package that crashes is refused with one line.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from models.backends.export import export_ray_function, with_min_rays
from models.backends.ray_function import RayFunctionBackend
from models.renderer_protocol import Capabilities, GradientDepth

# Inductor's compile state is process-wide: one compile at a time (the viewer's render, benchmark
# and export threads may each build a renderer), and whoever waited finds the package made.
_COMPILE_LOCK = threading.Lock()


def cpp_compiler() -> str | None:
    """The C++ compiler Inductor calls (its config.cpp.cxx: $CXX, else g++), where installed."""
    return shutil.which(os.environ.get("CXX", "g++"))


def package_cache() -> Path:
    """Where compiled packages are kept: $LFN_AOTI_CACHE, else lfn-viewer/aoti in the user's cache."""
    if folder := os.environ.get("LFN_AOTI_CACHE"):
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lfn-viewer" / "aoti"


def package_key(program: torch.export.ExportedProgram, mlp_tensors: tuple[torch.Tensor, ...],
                dtype: torch.dtype) -> str:
    device = mlp_tensors[0].device
    parts = [torch.__version__, str(device), str(dtype), platform.node(), platform.machine(),
             str(torch.get_num_threads()), program.graph_module.code,
             *(str(tuple(t.shape)) for t in mlp_tensors)]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def compile_ray_package(program: torch.export.ExportedProgram, path: Path) -> Path:
    """AOTInductor's package of an exported ray program at `path` (.pt2), which appears whole or not
    at all; aoti_load_package loads it, in any process, without our code."""
    from torch._inductor import aoti_compile_and_package  # imported here: 0.7 s of Inductor

    # Compiled under its own name (the archive's folders take it) in a private folder beside it.
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as folder:
        aoti_compile_and_package(program, package_path=str(Path(folder) / path.name))
        os.replace(Path(folder) / path.name, path)
    return path


class PackageLoadError(RuntimeError):
    """A compiled package that crashed or failed the process that loaded it."""


# Loads the package and nothing of ours: the crash seen was in torch's loader.
_LOAD_CHILD = "import sys; from torch._inductor import aoti_load_package; aoti_load_package(sys.argv[1])"
LOAD_CHECK_SECONDS = 300  # a CUDA load initializes the driver and may build Triton kernels


def load_verdict_path(package: Path) -> Path:
    return package.with_name(package.name + ".load")


def check_package_loads(package: Path) -> None:
    """Load `package` in a child process, once per package: a crash there is an error here. The
    verdict is kept when it is final (loads, or crashed with a signal), not after a timeout."""
    verdict_path = load_verdict_path(package)
    if verdict_path.is_file():
        verdict = verdict_path.read_text()
    else:
        verdict, final = load_in_child(package)
        if final:
            temporary = verdict_path.with_name(f".{verdict_path.name}.{os.getpid()}")
            temporary.write_text(verdict)
            os.replace(temporary, verdict_path)
    if verdict != "ok":
        raise PackageLoadError(f"AOTInductor package {package.name}: {verdict} (torch {torch.__version__}); "
                               f"the export backend runs the same program without it")


def load_in_child(package: Path) -> tuple[str, bool]:
    """("ok" or what went wrong, whether that verdict holds for good)."""
    try:
        child = subprocess.run([sys.executable, "-c", _LOAD_CHILD, str(package)], capture_output=True,
                               text=True, timeout=LOAD_CHECK_SECONDS)
    except subprocess.TimeoutExpired:
        return f"loading it took over {LOAD_CHECK_SECONDS} s in a test process", False
    if child.returncode == 0:
        return "ok", True
    if child.returncode < 0:
        return f"loading it killed a test process with {signal.Signals(-child.returncode).name}", True
    lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
    return f"loading it failed in a test process: {lines[-1]}", False


def ray_package(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype) -> Path:
    """The saved package of the ray program for tensors like these: compiled on first use."""
    program = export_ray_function(mlp_tensors, dtype)
    path = package_cache() / f"ray_colors-{package_key(program, mlp_tensors, dtype)}.pt2"
    with _COMPILE_LOCK:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            compile_ray_package(program, path)
    return path


class AOTIBackend(RayFunctionBackend):
    name = "aoti"
    # AOTInductor launches its kernels from its own runtime; capturing them in a CUDA graph
    # (aoti_load_package(run_single_threaded=True)) was not tried on a GPU.
    capabilities = Capabilities(gradient_depth=GradientDepth.FORWARD_MODE)

    @staticmethod
    def build_function(mlp_tensors: tuple[torch.Tensor, ...], dtype: torch.dtype):
        from torch._inductor import aoti_load_package

        package = ray_package(mlp_tensors, dtype)
        check_package_loads(package)
        return with_min_rays(aoti_load_package(str(package)))

    @classmethod
    def unavailable_reason(cls, device: torch.device, precision: str) -> str | None:
        if cpp_compiler() is None:
            return (f"AOTInductor builds the program with a C++ compiler, and "
                    f"{os.environ.get('CXX', 'g++')} is not installed (install g++ or set CXX)")
        if device.type == "cuda" and importlib.util.find_spec("triton") is None:
            return "AOTInductor's CUDA kernels are Triton kernels, and triton is not installed"
        return None
