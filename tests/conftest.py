"""Shared fixtures: tiny checkpoints built in a temp dir, an EGL context, and the GUI-requirement
switch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import moderngl
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.lfn import LFNConfig, LightFieldNetwork
from models.volumetric import VolumetricConfig, VolumetricField

REQUIRE_GUI = os.environ.get("LFN_REQUIRE_GUI") == "1"
TINY = dict(latent_dim=16, width=32, hidden_layers=3, cond_width=32)


def import_triton_interpreted() -> None:
    """Import triton, if installed and not yet imported, in its CPU interpreter's mode: triton picks
    the interpreter when it is first imported (TRITON_INTERPRET=1 then decorates its own tl.sum
    etc.); the tests' kernels then run interpreted wherever the switch is set again."""
    if "triton" in sys.modules:
        return
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        import triton  # noqa: F401
    except ImportError:  # the triton tests skip with their reason
        pass
    finally:
        del os.environ["TRITON_INTERPRET"]


def triton_interpreted_or_skip():
    """The triton module in its CPU interpreter's mode, or a skip of the calling test module (no
    triton, or triton imported compiled before the interpreter's switch could be set). The module's
    tests set TRITON_INTERPRET=1 again for their kernels (a fixture)."""
    import_triton_interpreted()
    triton = pytest.importorskip("triton", reason="triton is not installed: these tests need its interpreter")
    if type(triton.language.standard.sum).__name__ != "InterpretedFunction":
        pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set: run this file on its own",
                    allow_module_level=True)
    return triton


# Without CUDA the fused kernels run only interpreted: import triton so before any test module can
# import it otherwise, whatever the collection order. (With CUDA the other tests compile kernels.)
if not torch.cuda.is_available():
    import_triton_interpreted()


def skip_or_fail(reason: str) -> None:
    """Skip a GL/window test with a reason, or fail it where CI demands the GUI (LFN_REQUIRE_GUI=1)."""
    if REQUIRE_GUI:
        pytest.fail(f"LFN_REQUIRE_GUI=1 but {reason}")
    pytest.skip(reason)


def egl_context() -> moderngl.Context:
    """An offscreen EGL context, or a skip (a failure under LFN_REQUIRE_GUI=1) saying why not."""
    try:
        return moderngl.create_standalone_context(backend="egl")
    except Exception as error:
        skip_or_fail(f"no EGL context: {error}")


@pytest.fixture
def egl():
    ctx = egl_context()
    yield ctx
    ctx.release()


def tiny_lfn(num_instances: int = 3, seed: int = 0) -> LightFieldNetwork:
    torch.manual_seed(seed)
    model = LightFieldNetwork(LFNConfig(num_instances=num_instances, **TINY))
    with torch.no_grad():  # distinct, non-trivial latents so instances render differently
        model.latents.weight.normal_(std=1.0)
        for p in model.net.conditioning.parameters():
            p.normal_(std=0.2)
    return model


def tiny_volumetric(num_instances: int = 3, seed: int = 0) -> VolumetricField:
    torch.manual_seed(seed)
    model = VolumetricField(VolumetricConfig(num_instances=num_instances, frequencies=2, **TINY))
    with torch.no_grad():
        model.latents.weight.normal_(std=1.0)
    return model


def names(n: int) -> list[str]:
    return [f"car{i:03d}" for i in range(n)]


@pytest.fixture
def tiny_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(tiny_lfn(), names(3), {"steps": 0, "dataset": "none", "metrics": {}}, path)
    return path


@pytest.fixture
def tiny_volumetric_ckpt(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_volumetric.pt"
    save_checkpoint(tiny_volumetric(), names(3), {"steps": 0, "dataset": "none", "metrics": {}}, path)
    return path


@pytest.fixture(scope="session", autouse=True)
def aoti_package_cache(tmp_path_factory):
    """AOTInductor packages the tests compile go to one folder per session (their subprocesses'
    too), not the user's cache: the first aoti renderer compiles, later ones load."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LFN_AOTI_CACHE", str(tmp_path_factory.mktemp("aoti")))
        yield
