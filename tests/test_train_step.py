"""The fast training step against the reference: same draws, same loss, same gradients (fp32)."""

import pytest
import torch

from engine.cardata import load_cars
from engine.train_step import (
    BatchForward,
    draw_batch,
    load_optimizer_state,
    make_optimizer,
    make_training_step,
)
from models.lfn import LFNConfig, LightFieldNetwork
from models.mlp import mlp_forward
from tests.synthetic_cars import write_synthetic_dataset


@pytest.fixture(scope="module")
def cars(tmp_path_factory):
    return load_cars(write_synthetic_dataset(tmp_path_factory.mktemp("cars"), cars=4, views=6,
                                             res=16), "train")


def trained_a_little(seed: int = 0) -> LightFieldNetwork:
    """A model whose FiLM is not the identity it starts as, so folding has something to fold."""
    torch.manual_seed(seed)
    model = LightFieldNetwork(LFNConfig(num_instances=3, latent_dim=16, width=32, hidden_layers=3,
                                        cond_width=32))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def test_both_steps_draw_the_same_rays(cars):
    views = torch.nonzero(cars.train_view).flatten()
    batches = [draw_batch(cars, views, 5, 64, torch.Generator().manual_seed(7), impl)
               for impl in ("reference", "fast")]
    for name in ("objects", "origins", "dirs", "target"):
        assert torch.equal(getattr(batches[0], name), getattr(batches[1], name)), name


def test_fast_step_loss_and_gradients_match_the_reference_in_fp32(cars):
    views = torch.nonzero(cars.train_view).flatten()
    batch = draw_batch(cars, views, 5, 64, torch.Generator().manual_seed(3), "fast")
    assert len(set(batch.objects.tolist())) > 1  # several cars, one of them drawn twice
    results = {}
    for impl in ("reference", "fast"):
        model = trained_a_little()
        step = make_training_step(model, impl, lr=0.0, latent_lr=0.0, latent_weight=1e-2,
                                  device=torch.device("cpu"))
        loss = step(batch, lr_scale=1.0).loss
        results[impl] = loss, {n: p.grad.clone() for n, p in model.named_parameters()}
    (ref_loss, ref_grads), (fast_loss, fast_grads) = results["reference"], results["fast"]
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=0)
    assert ref_grads.keys() == fast_grads.keys() and "latents.weight" in ref_grads
    for name, grad in ref_grads.items():
        assert grad.abs().max() > 0, name  # every parameter takes part
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-5, atol=1e-6 * grad.abs().max(),
                                   msg=name)


def test_latent_noise_renders_from_a_nearby_code_and_returns_the_clean_one(cars):
    views = torch.nonzero(cars.train_view).flatten()
    batch = draw_batch(cars, views, 3, 32, torch.Generator().manual_seed(5), "fast")
    model = trained_a_little()
    forward = BatchForward(model, folded=True, latent_noise=0.3)
    torch.manual_seed(11)
    noisy_colors, codes = forward(batch.objects, batch.origins, batch.dirs)
    assert torch.equal(codes, model.latents(batch.objects))  # what the latent penalty reads
    torch.manual_seed(11)
    shifted = codes + 0.3 * torch.randn_like(codes)
    expected = model(batch.origins, batch.dirs, shifted, folded=True)
    torch.testing.assert_close(noisy_colors, expected, rtol=0, atol=0)
    clean_colors, _ = BatchForward(model, folded=True)(batch.objects, batch.origins, batch.dirs)
    assert (noisy_colors - clean_colors).abs().max() > 1e-3
    with pytest.raises(ValueError, match="latent noise -0.1"):
        make_training_step(model, "fast", 1e-3, 1e-3, 1e-4, torch.device("cpu"), latent_noise=-0.1)


def test_specialize_still_folds_one_latent_into_the_plain_mlp():
    model = trained_a_little()
    rays = torch.randn(1, 50, 6)
    latent = model.latents.weight[1]
    plain = mlp_forward(rays[0], *model.specialize(latent))
    torch.testing.assert_close(plain, model.net(rays, latent[None])[0], rtol=1e-5, atol=1e-6)


def test_a_resumed_optimizer_keeps_this_runs_implementation():
    model = trained_a_little()
    saved = make_optimizer(model, 1e-3, 1e-3, "default")
    model(torch.zeros(1, 4, 3), torch.ones(1, 4, 3), model.latents.weight[:1]).sum().backward()
    saved.step()
    resumed = make_optimizer(model, 1e-3, 1e-3, "fused")
    load_optimizer_state(resumed, saved.state_dict())
    assert all(g["fused"] for g in resumed.param_groups)
    assert torch.equal(resumed.state[model.latents.weight]["exp_avg"],
                       saved.state[model.latents.weight]["exp_avg"])
