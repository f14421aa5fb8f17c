import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch

from models.checkpoint import CheckpointError, checkpoint_dict, load_checkpoint, save_checkpoint
from models.encoder import encoder_path, load_encoder
from models.instances import with_instance
from tests.conftest import names, tiny_lfn, tiny_volumetric

META = {"steps": 5, "dataset": "d", "metrics": {"psnr_heldout_views": 1.0}}


def test_round_trip_keeps_weights_latents_names_and_meta(tmp_path):
    model = tiny_lfn()
    save_checkpoint(model, names(3), META, tmp_path / "a.pt")
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert ckpt.instance_names == names(3) and ckpt.meta == META
    for (k, v), (k2, v2) in zip(model.state_dict().items(), ckpt.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    assert ckpt.resolve_instance(-1) == 2
    with pytest.raises(IndexError):
        ckpt.resolve_instance(3)


def test_modulation_offsets_round_trip_and_render_their_instances(tmp_path):
    model = tiny_lfn()
    width = 2 * model.config.hidden_layers * model.config.width
    offset = 0.1 * torch.randn(width)
    save_checkpoint(model, names(3), META, tmp_path / "a.pt", {2: offset})
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert set(ckpt.modulation_offsets) == {2} and torch.equal(ckpt.modulation_offsets[2], offset)
    latent, kept = ckpt.instance_code(2)
    assert torch.equal(latent, ckpt.latents[2]) and torch.equal(kept, offset)
    assert ckpt.instance_code(1)[1] is None
    save_checkpoint(model, names(3), META, tmp_path / "plain.pt")  # none: no key, as before
    assert "modulation_offsets" not in torch.load(tmp_path / "plain.pt", weights_only=True)
    assert load_checkpoint(tmp_path / "plain.pt").modulation_offsets == {}


WIDTH = 192  # tiny_lfn's modulations: 2 · 3 hidden layers · 32


@pytest.mark.parametrize("offsets, expected", [
    ({"rows": [3], "offsets": torch.zeros(1, WIDTH)}, "names instances it does not hold"),
    ({"rows": [1, 1], "offsets": torch.zeros(2, WIDTH)}, "names instances it does not hold"),
    ({"rows": [1], "offsets": torch.zeros(1, 7)}, f"not rows and a (rows, {WIDTH}) table"),
    ({"rows": [1]}, f"not rows and a (rows, {WIDTH}) table"),
    ([1, 2], f"not rows and a (rows, {WIDTH}) table"),
    ({"rows": [1], "offsets": torch.full((1, WIDTH), float("nan"))}, "NaN or infinite modulation"),
])
def test_bad_modulation_offsets_give_one_clear_error(tmp_path, offsets, expected):
    model = tiny_lfn()
    assert 2 * model.config.hidden_layers * model.config.width == WIDTH
    path = write(tmp_path, "o.pt", dict(checkpoint_dict(model, names(3), META),
                                         modulation_offsets=offsets))
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_checkpoint(path)
    volumetric = write(tmp_path, "v.pt", dict(checkpoint_dict(tiny_volumetric(), names(3), META),
                                              modulation_offsets={"rows": [], "offsets": torch.zeros(0, 1)}))
    with pytest.raises(CheckpointError, match="volumetric checkpoint cannot hold modulation"):
        load_checkpoint(volumetric)


@pytest.mark.parametrize("tiny", [tiny_lfn, tiny_volumetric])
def test_half_weights_are_stored_as_float16_and_load_as_the_rounded_network(tmp_path, tiny):
    model = tiny()
    with torch.no_grad():
        model.latents.weight.normal_()  # codes that float16 would round
    save_checkpoint(model, names(3), META, tmp_path / "half.pt", weights_dtype=torch.float16)
    data = torch.load(tmp_path / "half.pt", weights_only=True)
    assert {v.dtype for v in data["state_dict"].values()} == {torch.float16}
    assert torch.equal(data["latents"], model.latents.weight)  # the codes stay float32
    ckpt = load_checkpoint(tmp_path / "half.pt")
    assert ckpt.weights_dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    for key, value in model.state_dict().items():
        rounded = value if key == "latents.weight" else value.half().float()
        assert torch.equal(ckpt.model.state_dict()[key], rounded), key
    assert load_checkpoint(write(tmp_path, "f.pt", good_dict())).weights_dtype == torch.float32


def test_a_half_checkpoint_saved_again_stays_half_and_loses_nothing(tmp_path):
    save_checkpoint(tiny_lfn(), names(3), META, tmp_path / "half.pt", weights_dtype=torch.float16)
    ckpt = load_checkpoint(tmp_path / "half.pt")
    grown = with_instance(ckpt, torch.randn(ckpt.model.config.latent_dim), "new", {})
    assert grown.weights_dtype == torch.float16
    grown.save(tmp_path / "grown.pt")
    again = load_checkpoint(tmp_path / "grown.pt")
    for key, value in ckpt.model.state_dict().items():
        if key != "latents.weight":
            assert torch.equal(again.model.state_dict()[key], value), key


def all_bfloat16(state):
    return {k: v.bfloat16() for k, v in state.items()}


def head_in_float16(state):
    return dict(state, **{"net.head.weight": state["net.head.weight"].half()})


@pytest.mark.parametrize("retype, expected", [
    (all_bfloat16, "weights stored as bfloat16: expected one of float32, float16"),
    (head_in_float16, "weights stored as float16, float32: expected one of"),
])
def test_weights_in_another_or_mixed_dtype_give_one_clear_error(tmp_path, retype, expected):
    bad = good_dict()
    bad["state_dict"] = retype(bad["state_dict"])
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        load_checkpoint(write(tmp_path, "d.pt", bad))
    with pytest.raises(ValueError, match="stored as float32, float16, not torch.bfloat16"):
        checkpoint_dict(tiny_lfn(), names(3), META, weights_dtype=torch.bfloat16)


def test_volumetric_round_trip(tmp_path):
    save_checkpoint(tiny_volumetric(), names(3), META, tmp_path / "v.pt")
    assert load_checkpoint(tmp_path / "v.pt").model.kind == "volumetric"


def write(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def good_dict():
    return checkpoint_dict(tiny_lfn(), names(3), META)


class Payload:
    """Unpickling this calls os.system: a checkpoint that tries to run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("empty", "is empty"),
    ("random", "not a"),
    ("four_bytes", "truncated or corrupt"),
    ("truncated", "truncated or corrupt"),
    ("wrong_content", "not an LFN viewer checkpoint"),
    ("wrong_version", "format version 99"),
    ("wrong_shapes", "latent table has shape"),
    ("wrong_weights", "weights do not match"),
])
def test_bad_checkpoints_give_one_clear_error(tmp_path, case, expected):
    if case == "missing":
        path = tmp_path / "nope.pt"
    elif case == "directory":
        path = tmp_path
    elif case == "empty":
        path = tmp_path / "empty.pt"
        path.write_bytes(b"")
    elif case == "random":
        path = tmp_path / "random.pt"
        path.write_bytes(os.urandom(4096))
    elif case == "four_bytes":
        path = tmp_path / "tiny.pt"
        path.write_bytes(b"junk")
    elif case == "truncated":
        full = write(tmp_path, "full.pt", good_dict())
        path = tmp_path / "truncated.pt"
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    elif case == "wrong_content":
        path = write(tmp_path, "w.pt", {"weights": torch.zeros(3)})
    elif case == "wrong_version":
        path = write(tmp_path, "v.pt", dict(good_dict(), version=99))
    elif case == "wrong_shapes":
        path = write(tmp_path, "s.pt", dict(good_dict(), latents=torch.zeros(3, 5)))
    else:
        bad = good_dict()
        bad["state_dict"]["net.head.weight"] = torch.zeros(7, 7)
        path = write(tmp_path, "ws.pt", bad)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert expected in message and str(path) in message and "\n" not in message


def test_a_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "payload_ran"
    path = write(tmp_path, "evil.pt", dict(good_dict(), meta=Payload(marker)))
    # The payload works when unpickled without weights_only: the test's trap is real.
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"system" in data
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


SHIPPED = sorted(p for p in (Path(__file__).parent.parent / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_checkpoint_is_small_and_loads_weights_only(path):
    assert path.stat().st_size <= 16 * 2**20, f"{path.name}: over the 16 MiB a checkpoint may take"
    torch.load(path, weights_only=True, map_location="cpu")  # raises on anything but tensors and plain data


PAIRED = [p for p in SHIPPED if encoder_path(p).exists()]


@pytest.mark.parametrize("path", PAIRED, ids=[p.name for p in PAIRED])
def test_a_shipped_checkpoint_and_its_encoder_fit_16_mib_together_and_belong_together(path):
    together = path.stat().st_size + encoder_path(path).stat().st_size
    assert together <= 16 * 2**20, f"{path.name} and its encoder: {together / 2**20:.2f} MiB"
    load_encoder(encoder_path(path), load_checkpoint(path).model)  # refuses another network's


def test_the_wide_prior_names_its_cars_and_scores():
    ckpt = load_checkpoint(Path(__file__).parent.parent / "checkpoints" / "cars_wide.pt")
    origins = {name.split("-")[0] for name in ckpt.instance_names}
    assert origins == {"torcs", "sumo", "fg", "proc2"} and len(ckpt.instance_names) == 520
    assert set(ckpt.meta["metrics"]["per_source"]) == {"real", "procedural"}


def test_the_rank8_prior_stores_half_weights_for_cars_pts_cars():
    folder = Path(__file__).parent.parent / "checkpoints"
    rank8, default = load_checkpoint(folder / "cars_rank8.pt"), load_checkpoint(folder / "cars.pt")
    assert rank8.weights_dtype == torch.float16 and rank8.model.config.weight_rank == 8
    assert rank8.instance_names == default.instance_names  # fine-tuned from it, car for car
    # cars.pt's own three runs, then the first rank-8 run, which the shipped file continues
    lineage = [run["checkpoint"] for run in rank8.meta["started_from"]]
    assert lineage == ["cars.pt"] * 3 + ["cars_rank8.pt"]
    assert lineage[:3] == [run["checkpoint"] for run in default.meta["started_from"]] + ["cars.pt"]
