"""A compact copy of the TORCS files the data set reads, to ship to another machine.

Per model: its XML, readme, highest-detail .acc and the textures it uses; the 3-D wheel models
the models name; the driver paint schemes of each model. Textures are stored downsampled as PNG
(the loader reads either), which is what the renderer would make of them anyway.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from tools.ac3d import load_ac3d
from tools.textures import read_rgba, resolve_texture
from tools.torcs_cars import car_names, paint_schemes, read_spec


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _png(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(read_rgba(src)).save(dst.with_suffix(".png"), optimize=True)


def pack_torcs(root: Path, out: Path) -> int:
    """Write the pack under `out` (cars/, wheels/, drivers/); returns its size in bytes."""
    wheel_dirs = set()
    for name in car_names(root):
        spec = read_spec(root, name)
        folder = root / "cars" / name
        for path in (folder / f"{name}.xml", folder / "readme.txt", spec.body_file):
            if path.is_file():
                _copy(path, out / path.relative_to(root))
        textures = [resolve_texture(folder, t) for t in load_ac3d(spec.body_file).textures]
        if spec.wheel_texture is not None:
            textures.append(spec.wheel_texture)
        for texture in textures:
            _png(texture, out / texture.relative_to(root))
        for skin in paint_schemes(root, name):
            _png(skin, out / skin.relative_to(root))
        if spec.wheel_dir is not None:
            wheel_dirs.add(spec.wheel_dir)
    for wheel_dir in wheel_dirs:
        model = wheel_dir / "wheel0.acc"
        _copy(model, out / model.relative_to(root))
        readme = wheel_dir / "readme.txt"
        if readme.is_file():
            _copy(readme, out / readme.relative_to(root))
        for texture in load_ac3d(model).textures:
            _png(resolve_texture(wheel_dir, texture), out / wheel_dir.relative_to(root) / texture)
    if len(root.parents) > 1:  # Debian's copyright file, in a dpkg -x tree
        copyright_file = root.parents[1] / "doc/torcs-data/copyright"
        if copyright_file.is_file():
            _copy(copyright_file, out / "COPYRIGHT.debian")
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
