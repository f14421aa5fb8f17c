"""The folders are layers: each imports only the layers below it, never a folder beside or above.

    main.py                      the command line
    viewer/  bench/  tools/      entry points (window, benchmark scripts, data and training tools)
    engine/                      frames, latent selections, benchmark engine, photos, data reading
    models/                      cameras, rays, networks, renderers, depth (no GL, no GUI)

Every import counts, the lazy ones inside functions too: a cycle through a lazy import is still a
cycle that someone reading the code has to hold in mind.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYER = {"models": 0, "engine": 1, "viewer": 2, "bench": 2, "tools": 2, "main": 3}
GUI_MODULES = {"moderngl", "glfw", "imgui_bundle", "OpenGL", "glcontext"}
# The viewer shows a data set's cars through checkpoints only: it never reads the data or trains.
VIEWER_NEVER = {"engine.cardata", "engine.evaluation", "models.training"}


def project_modules() -> list[tuple[str, Path]]:
    found = [("main", ROOT / "main.py")]
    for folder in LAYER:
        if folder != "main":
            found += [(folder, path) for path in sorted((ROOT / folder).rglob("*.py"))]
    return found


def imported_names(source: str) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the source, nested ones included."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def layering_violations(folder: str, label: str, source: str) -> list[str]:
    """What is wrong with the imports of `source`, a module of `folder` named `label` in messages."""
    problems = []
    for line, name in imported_names(source):
        top = name.split(".")[0]
        where = f"{label}:{line} imports {name}"
        if top in LAYER and top != folder and LAYER[top] >= LAYER[folder]:
            problems.append(f"{where} ({top}/ is not below {folder}/)")
        if folder == "models" and top in GUI_MODULES:
            problems.append(f"{where} (models/ runs on headless GPU boxes: no GL or GUI)")
        if folder == "viewer" and any(name == n or name.startswith(n + ".") for n in VIEWER_NEVER):
            problems.append(f"{where} (the viewer never reads the data set or trains)")
    return problems


@pytest.mark.parametrize(("folder", "path"), project_modules(),
                         ids=[str(p.relative_to(ROOT)) for _, p in project_modules()])
def test_imports_go_down_the_layers_only(folder, path):
    assert layering_violations(folder, str(path.relative_to(ROOT)), path.read_text()) == []


def test_the_check_sees_upward_sideways_lazy_and_gui_imports():
    source = ("import torch\nfrom viewer.app import ViewerApp\nfrom models.lfn import LFNConfig\n\n\n"
              "def f():\n    import tools.train\n    from bench import benchmark\n")
    problems = layering_violations("engine", "probe.py", source)
    culprits = [p.split(" imports ")[1].split(" (")[0] for p in problems]
    assert culprits == ["viewer.app", "tools.train", "bench"]
    assert "no GL" in layering_violations("models", "probe.py", "import moderngl\n")[0]
    assert layering_violations("engine", "probe.py", "import moderngl\n") == []
    data_read = layering_violations("viewer", "p.py", "from engine.cardata import x\n")
    assert "never reads the data set" in data_read[0]
    assert layering_violations("viewer", "p.py", "from engine.cardatabase import x\n") == []
