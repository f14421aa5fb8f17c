"""The default data set stays what checkpoints/cars.pt was trained on: its car list, split and
procedural meshes are pinned to hashes taken from the code that made it (2026-12-05).

A new kind of car must be opt-in (a flag); if one of these hashes moves, the shipped checkpoint's
latent table no longer matches the data set it is evaluated on.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from tests.test_ac3d import TORCS_DIR
from tools.car_set import car_roots
from tools.make_dataset import parse_args, plan
from tools.procedural_cars import procedural_car
from tools.torcs_cars import find_torcs_root

# sha256 of the mesh arrays of procedural:0 … procedural:5 (positions, normals, uvs, colors,
# tri_texture, in that order) as the pre-variety code built them, floats rounded to 1e-4 first:
# another machine's math library may differ in the last bits, a changed generator does not
PROCEDURAL_MESHES = "77216693f84c433f611b68ea1bedabfb7a7260309b125f60cc0e669e78cf811b"
# sha256 of the manifest entries (json, sorted keys) of the default plan: procedural cars only,
# and with the TORCS data (torcs-data 1.3.7)
PROCEDURAL_PLAN = "b81f5ba77cfb98d6b4292d6111a820f3ab59a2f53381cc64e5916e8c7be93f99"
FULL_PLAN = "703dcd16a8854705089cb5b074d16197e7d1959581853540282cff446f557005"


def _plan_hash(argv: list[str]) -> str:
    args = parse_args(["--out", "unused", *argv])
    entries = [i.manifest_entry() for i in plan(args, car_roots(args.torcs, args.sumo))]
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def rounded(array: np.ndarray) -> np.ndarray:
    values = np.asarray(array)
    if values.dtype.kind == "f":
        return np.ascontiguousarray(np.rint(values.astype(np.float64) * 1e4).astype(np.int64))
    return np.ascontiguousarray(values.astype(np.int64))


def test_default_procedural_meshes_are_unchanged() -> None:
    digest = hashlib.sha256()
    for seed in range(6):
        mesh = procedural_car(seed)
        for name in ("positions", "normals", "uvs", "colors", "tri_texture"):
            digest.update(rounded(getattr(mesh, name)).tobytes())
    assert digest.hexdigest() == PROCEDURAL_MESHES


def test_default_plan_is_unchanged() -> None:
    assert _plan_hash([]) == PROCEDURAL_PLAN


def test_default_plan_with_torcs_is_unchanged() -> None:
    try:
        find_torcs_root(TORCS_DIR)
    except FileNotFoundError:
        pytest.skip(f"no TORCS data at {TORCS_DIR} (set LFN_TORCS_DIR to an extracted torcs-data)")
    assert _plan_hash(["--torcs", str(TORCS_DIR)]) == FULL_PLAN
