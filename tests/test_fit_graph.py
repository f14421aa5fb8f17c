"""The single-image fit replayed from a CUDA graph takes the eager fit's steps (models/fitting.py)."""

import pytest
import torch

from models.cameras import Orbit, intrinsics
from models.fitting import EAGER_STEPS_BEFORE_CAPTURE, fit_latent_steps
from models.lfn import LFNConfig, LightFieldNetwork

RES = 16
STEPS = EAGER_STEPS_BEFORE_CAPTURE + 9


def tiny_setup(device: str):
    torch.manual_seed(0)
    model = LightFieldNetwork(LFNConfig(num_instances=3, latent_dim=8, width=32, hidden_layers=2,
                                        cond_width=16)).to(device)
    photo = torch.randint(0, 256, (1, RES, RES, 3), dtype=torch.uint8)
    return model, photo


def run_fit(model, photo, camera, cuda_graph: bool):
    steps = fit_latent_steps(model, photo, camera, intrinsics(RES, RES), rays_per_step=64,
                             cuda_graph=cuda_graph)
    taken = [next(steps) for _ in range(STEPS)]
    steps.close()
    return taken


CAMERAS = {"given": Orbit(30.0, 20.0).cam2world()[None], "refined": Orbit(30.0, 20.0)}


@pytest.mark.parametrize("camera", CAMERAS, ids=list(CAMERAS))
def test_the_graph_flag_changes_nothing_where_there_is_no_cuda(camera):
    model, photo = tiny_setup("cpu")
    eager, flagged = (run_fit(model, photo, CAMERAS[camera], flag) for flag in (False, True))
    for a, b in zip(eager, flagged, strict=True):
        assert (a.step, a.loss) == (b.step, b.loss) and torch.equal(a.latent, b.latent)
        assert a.orbit == b.orbit
    assert all(p.requires_grad for p in model.parameters())  # given back after the fit


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("camera", CAMERAS, ids=list(CAMERAS))
def test_replayed_steps_follow_the_eager_steps(camera):
    model, photo = tiny_setup("cuda")
    eager, graphed = (run_fit(model, photo, CAMERAS[camera], flag) for flag in (False, True))
    assert [s.step for s in graphed] == list(range(1, STEPS + 1))
    for a, b in zip(eager, graphed, strict=True):
        assert abs(a.loss - b.loss) <= 1e-4 * max(1.0, abs(a.loss))
        assert torch.allclose(a.latent, b.latent, atol=1e-4, rtol=1e-4)
        if a.orbit is not None:
            assert abs(a.orbit.azimuth - b.orbit.azimuth) < 1e-3
            assert abs(a.orbit.elevation - b.orbit.elevation) < 1e-3
    # the replayed steps moved the latent: the graph ran, it did not repeat one state
    assert not torch.equal(graphed[EAGER_STEPS_BEFORE_CAPTURE].latent, graphed[-1].latent)
