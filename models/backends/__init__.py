"""The LFN's ray backends by name: one class per file, each a models.renderer_protocol.RayBackend.

A new backend is one class in one file here plus one entry in BACKENDS; the command line's
--backend choices, the viewer's backend list, backend_unavailable and make_renderer all read this.
"""

from __future__ import annotations

from models.backends.aoti import AOTIBackend
from models.backends.compile import CompileBackend
from models.backends.eager import EagerBackend
from models.backends.export import ExportBackend
from models.backends.torchscript import TorchScriptBackend
from models.backends.triton import TritonBackend
from models.renderer_protocol import RayBackend

# In the order the viewer lists them; the first is the default.
BACKENDS: dict[str, type[RayBackend]] = {
    backend.name: backend
    for backend in (TorchScriptBackend, EagerBackend, CompileBackend, TritonBackend, ExportBackend,
                    AOTIBackend)
}
