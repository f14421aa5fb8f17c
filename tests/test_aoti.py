"""The AOTInductor backend (models/backends/aoti.py): the exported ray program compiled to a .pt2
package, saved, loaded and rendered; without a C++ compiler, a reason instead of a crash; a package
whose load crashes a test process is refused with one line instead of crashing ours."""

from __future__ import annotations

import pytest
import torch
from torch._inductor import aoti_load_package

import main
from engine.benchmark_methods import build_methods
from models.backends import aoti, ray_function
from models.backends.aoti import AOTIBackend, PackageLoadError, cpp_compiler, load_verdict_path, ray_package
from models.cameras import orbit_pose
from models.checkpoint import load_checkpoint
from models.lfn import ray_colors
from models.renderer import LFNRenderer, backend_unavailable
from tests.conftest import tiny_lfn

CPU = torch.device("cpu")
POSE = orbit_pose(40, 20, 2.8)
needs_compiler = pytest.mark.skipif(
    cpp_compiler() is None, reason="no C++ compiler (g++ or $CXX) here: AOTInductor cannot build")


@needs_compiler
def test_the_aoti_renderer_draws_the_torchscript_image_for_every_latent():
    model = tiny_lfn()
    compiled, traced = LFNRenderer(model, backend="aoti"), LFNRenderer(model, backend="torchscript")
    assert compiled.backend == "aoti" and not compiled.capabilities.cuda_graphs
    for instance in range(3):  # a new latent is new input tensors, never a new compile
        for renderer in (compiled, traced):
            renderer.set_latent(model.latents.weight[instance])
        difference = (compiled.render(POSE, 20) - traced.render(POSE, 20)).abs().max()
        assert difference <= 1e-5, f"instance {instance}: max abs diff {difference:.2e}"
    one_ray = torch.randn(1, 6)  # below the export's two-ray minimum: padded
    assert torch.allclose(compiled.colors(one_ray), traced.colors(one_ray), atol=1e-5)


@needs_compiler
def test_a_saved_package_is_loaded_not_recompiled_and_runs_without_our_code(monkeypatch):
    model = tiny_lfn()
    tensors = tuple(t.detach().contiguous() for t in model.specialize(model.latents.weight[2]))
    package = ray_package(tensors, torch.float32)  # compiled here, or by an earlier test
    assert package.suffix == ".pt2" and package.parent == aoti.package_cache()
    assert not list(package.parent.glob(".*"))  # no compile folder left behind

    def no_compile(*_):
        raise AssertionError("compiled again instead of loading the saved package")

    monkeypatch.setattr(aoti, "compile_ray_package", no_compile)
    assert ray_package(tensors, torch.float32) == package
    LFNRenderer(model, backend="aoti")  # a renderer loads it too
    rays = torch.randn(37, 6)  # another ray count than the export's example: the count is symbolic
    loaded = aoti_load_package(str(package))  # plain torch, none of models/
    assert torch.allclose(loaded(rays, *tensors), ray_colors(rays, *tensors), atol=1e-5)


def test_without_a_compiler_the_backend_says_why_and_the_cli_refuses_it(monkeypatch, tiny_ckpt, tmp_path,
                                                                         capsys):
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    reason = backend_unavailable("aoti", CPU, "fp32")
    assert reason == ("AOTInductor builds the program with a C++ compiler, and no-such-c++-compiler "
                      "is not installed (install g++ or set CXX)")
    assert AOTIBackend.unavailable_reason(CPU, "fp16") == reason
    code = main.main(["--ckpt", str(tiny_ckpt), "--headless", "--out", str(tmp_path / "a.png"),
                      "--device", "cpu", "--precision", "fp32", "--backend", "aoti"])  # the package above
    assert code == 1 and capsys.readouterr().err == f"error: --backend aoti: {reason}\n"


def loaded_packages() -> int:
    """Mappings of AOTInductor libraries in this process: each load maps its own copy, for good."""
    with open("/proc/self/maps") as maps:
        return sum("aotinductor" in line for line in maps)


@needs_compiler
def test_another_aoti_renderer_loads_no_other_library():
    model = tiny_lfn()
    LFNRenderer(model, backend="aoti")  # compiles or loads the package once for the process
    loaded = loaded_packages()
    for instance in range(3):  # as switches back to aoti, benchmark runs and video exports build them
        renderer = LFNRenderer(model, backend="aoti")
        renderer.set_latent(model.latents.weight[instance])
        renderer.render(POSE, 8)
    assert loaded_packages() == loaded


def use_fresh_packages(monkeypatch, cache) -> None:
    """An empty package cache, and none of the functions this process has built (each is built once)."""
    monkeypatch.setenv("LFN_AOTI_CACHE", str(cache))
    monkeypatch.setattr(ray_function, "_built", {})


@needs_compiler
def test_a_package_whose_load_crashes_a_test_process_is_refused_in_one_line(monkeypatch, tiny_ckpt, tmp_path,
                                                                           capsys):
    # As loading a CUDA package did with torch 2.11 on an H100: SIGSEGV inside aoti_load_package.
    use_fresh_packages(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(aoti, "_LOAD_CHILD", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    model = tiny_lfn()
    with pytest.raises(PackageLoadError, match="killed a test process with SIGSEGV"):
        LFNRenderer(model, backend="aoti")
    package, = (tmp_path / "cache").glob("*.pt2")
    assert load_verdict_path(package).read_text() == "loading it killed a test process with SIGSEGV"

    def no_child(*_, **__):
        raise AssertionError("the kept verdict was tested again")

    monkeypatch.setattr(aoti.subprocess, "run", no_child)
    ckpt = load_checkpoint(tiny_ckpt)
    found = build_methods(ckpt, None, CPU, "fp32", 0, 0, ["torchscript", "aoti"], None, None)
    assert [m.name for m in found.methods if m.name.startswith("lfn:")] == []
    assert any(n.startswith("lfn:aoti skipped: PackageLoadError: AOTInductor package") for n in found.notes)
    code = main.main(["--ckpt", str(tiny_ckpt), "--headless", "--out", str(tmp_path / "a.png"),
                      "--device", "cpu", "--precision", "fp32", "--backend", "aoti"])  # the package above
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "SIGSEGV" in err and err.startswith("error: ")
    assert not (tmp_path / "a.png").exists()


@needs_compiler
def test_a_failed_load_that_may_pass_next_time_is_not_kept(monkeypatch, tmp_path):
    use_fresh_packages(monkeypatch, tmp_path)
    monkeypatch.setattr(aoti, "_LOAD_CHILD", "raise SystemExit('no GPU free')")
    with pytest.raises(PackageLoadError, match="failed in a test process: no GPU free"):
        LFNRenderer(tiny_lfn(), backend="aoti")
    package, = tmp_path.glob("*.pt2")
    assert not load_verdict_path(package).exists()
    monkeypatch.setattr(aoti, "_LOAD_CHILD", "pass")
    monkeypatch.setattr(ray_function, "_built", {})
    LFNRenderer(tiny_lfn(), backend="aoti")
    assert load_verdict_path(package).read_text() == "ok"
