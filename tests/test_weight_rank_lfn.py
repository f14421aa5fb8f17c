"""An LFN whose code also generates a rank-R change of every layer's weight (LFNConfig.weight_rank):
it computes what the docstring says, every path that evaluates it agrees with the module, a
FiLM-only checkpoint starts such a run unchanged, and checkpoints and resumes keep the rank."""

import pytest
import torch

from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from models.lfn import LFNConfig, LightFieldNetwork
from tests.conftest import names
from tests.lfn_paths import (
    TINY,
    assert_cpu_backend_renders_the_module,
    assert_folded_forward_and_derivatives_match,
    random_lfn,
    random_rays,
)
from tests.synthetic_cars import write_synthetic_dataset
from tools.train import initialize_from, load_latest_state, parse_args, train

META = {"steps": 0, "dataset": "none", "metrics": {}}


def test_each_layer_computes_film_of_its_weight_plus_the_generated_product():
    rank, model = 2, random_lfn(weight_rank=2)
    net, rays, latents = model.net, random_rays(3, 10), model.latents.weight
    assert net.modulation_width == 2 * 3 * 32 + rank * (32 + 6) + 2 * rank * (32 + 32)
    modulations = net.conditioning(latents)
    film, factors = modulations[:, :2 * 3 * 32], modulations[:, 2 * 3 * 32:]
    for b in range(3):  # each object by hand: unpack its scales, shifts and factors in order
        gamma, beta = film[b].view(2, 3, 32)
        h, at = rays[b], 0
        for i, layer in enumerate(net.layers):
            u = factors[b, at:at + 32 * rank].view(32, rank)
            at += 32 * rank
            v = factors[b, at:at + layer.in_features * rank].view(layer.in_features, rank)
            at += layer.in_features * rank
            h = torch.relu(gamma[i] * (h @ (layer.weight + u @ v.T).T + layer.bias) + beta[i])
        assert at == factors.shape[1]
        expected = torch.sigmoid(net.head(h))
        assert torch.allclose(model.plucker_colors(rays, latents)[b], expected)


def test_folded_forward_and_its_derivatives_match_the_module():
    assert_folded_forward_and_derivatives_match(random_lfn(weight_rank=3))


@pytest.mark.parametrize("backend", ["eager", "torchscript", "export"])
def test_every_cpu_backend_renders_the_changed_weights(backend):
    assert_cpu_backend_renders_the_module(random_lfn(weight_rank=2).float(), backend)


def test_a_film_checkpoint_starts_a_ranked_run_as_the_same_function_that_can_grow(tmp_path):
    film = random_lfn(weight_rank=0).float()
    save_checkpoint(film, ["a", "b", "c"], META, tmp_path / "film.pt")
    ranked = LightFieldNetwork(LFNConfig(num_instances=2, weight_rank=2, **TINY))
    assert initialize_from(ranked, str(tmp_path / "film.pt"), ["c", "new"]).codes_copied == 1
    rays = random_rays(1, 32).float()
    colors = ranked.plucker_colors(rays, ranked.latents.weight[:1], folded=True)
    assert torch.allclose(colors, film.plucker_colors(rays, film.latents.weight[2:3]), atol=1e-6)
    colors.square().mean().backward()
    grad = ranked.net.conditioning[-1].bias.grad
    u_rows = slice(2 * 3 * 32, 2 * 3 * 32 + 32 * 2)  # the first layer's U, then its V
    v_rows = slice(u_rows.stop, u_rows.stop + 6 * 2)
    assert grad[u_rows].abs().max() > 0  # U = 0 is where it starts, not where it must stay
    assert torch.equal(grad[v_rows], torch.zeros(12))  # V's gradient is U's: none until U grows
    # the other way (a ranked start for a FiLM-only run) is another architecture
    save_checkpoint(ranked, ["c", "new"], META, tmp_path / "ranked.pt")
    with pytest.raises(ValueError, match="architecture"):
        initialize_from(random_lfn().float(), str(tmp_path / "ranked.pt"), ["c"])


def test_checkpoint_keeps_the_rank_and_offsets_of_the_wider_modulations(tmp_path):
    model = random_lfn(weight_rank=2).float()
    offset = 0.1 * torch.randn(model.net.modulation_width)
    save_checkpoint(model, names(3), META, tmp_path / "a.pt", {1: offset})
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert ckpt.model.config.weight_rank == 2 and torch.equal(ckpt.modulation_offsets[1], offset)
    rays = random_rays(1, 16).float()
    assert torch.equal(ckpt.model.plucker_colors(rays, model.latents.weight[:1]),
                       model.plucker_colors(rays, model.latents.weight[:1]))
    save_checkpoint(model, names(3), META, tmp_path / "b.pt", {1: offset[:2 * 3 * 32]})
    with pytest.raises(CheckpointError, match=f"\\(rows, {model.net.modulation_width}\\)"):
        load_checkpoint(tmp_path / "b.pt")


def test_a_bad_rank_is_refused_and_a_state_resumes_only_with_its_rank(tmp_path):
    data = write_synthetic_dataset(tmp_path / "cars", cars=3, views=6, res=16)
    common = ["--data", str(data), "--out", str(tmp_path / "run"), "--save-every", "5",
              "--eval-every", "1000", "--objects-per-step", "2", "--rays-per-object", "64",
              "--width", "32", "--latent-dim", "8", "--hidden-layers", "3", "--cond-width", "16",
              "--eval-cars", "1", "--eval-views", "1", "--device", "cpu"]
    with pytest.raises(ValueError, match="--weight-rank -1"):
        train(parse_args([*common, "--steps", "5", "--weight-rank", "-1"]))
    with pytest.raises(ValueError, match="--weight-rank 2: .* for an LFN"):
        train(parse_args([*common, "--steps", "5", "--weight-rank", "2", "--model", "volumetric"]))
    train(parse_args([*common, "--steps", "5", "--weight-rank", "2"]))
    assert load_checkpoint(tmp_path / "run" / "model.pt").model.config.weight_rank == 2
    with pytest.raises(ValueError, match="--weight-rank 2 \\(now 0\\)"):
        train(parse_args([*common, "--steps", "10", "--resume"]))
    train(parse_args([*common, "--steps", "10", "--resume", "--weight-rank", "2"]))
    assert load_latest_state(tmp_path / "run")[1]["step"] == 10
