"""tools.make_dataset's worker pool: a worker that dies (llvmpipe has segfaulted in one) costs a
fresh pool, not the run; multiprocessing.Pool waited forever on the car it lost."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools.make_dataset import POOL_RESTARTS, render_in_workers


def no_setup() -> None:
    pass


def write_unless_it_dies(instance, out: Path) -> str:
    """Writes the car's file, but dies without a word, as a segfault would, on `die-always`
    every time and on `die-once` the first time."""
    marker = out / f"{instance.id}.died"
    if instance.id == "die-always" or (instance.id == "die-once" and not marker.exists()):
        marker.touch()
        os._exit(139)
    (out / f"{instance.id}.npz").write_bytes(b"a car")
    return instance.id


def cars(*names: str) -> list[SimpleNamespace]:
    return [SimpleNamespace(id=name) for name in names]


def test_a_worker_that_dies_once_costs_a_fresh_pool_and_every_car_is_written(tmp_path):
    todo = cars("car-0", "car-1", "die-once", "car-2", "car-3")
    render_in_workers(todo, tmp_path, 2, (), initializer=no_setup, write=write_unless_it_dies)
    assert sorted(p.stem for p in tmp_path.glob("*.npz")) == sorted(c.id for c in todo)
    assert (tmp_path / "die-once.died").exists()  # it did die


def test_a_car_that_kills_every_pool_is_one_error_and_the_cars_written_are_kept(tmp_path):
    todo = cars("car-0", "car-1", "die-always")  # one worker: the two cars come first
    with pytest.raises(RuntimeError) as error:
        render_in_workers(todo, tmp_path, 1, (), initializer=no_setup, write=write_unless_it_dies)
    assert str(error.value) == (
        f"rendering workers died {POOL_RESTARTS + 1} times (a crash in the GL driver?); the 2 "
        "cars written are kept: the same command renders the other 1")
    assert sorted(p.stem for p in tmp_path.glob("*.npz")) == ["car-0", "car-1"]
