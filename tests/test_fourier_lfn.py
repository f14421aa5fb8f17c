"""An LFN that encodes its Plücker rays with Fourier features (LFNConfig.frequencies): every path
that evaluates it agrees with the module, and a raw-ray checkpoint starts such a run unchanged."""

import pytest
import torch

from models.backends.triton import TritonBackend
from models.checkpoint import save_checkpoint
from models.encoding import encoded_dim, fourier_features, fourier_tangents
from models.lfn import LFNConfig, LightFieldNetwork, encoding_frequencies
from tests.lfn_paths import (
    TINY,
    assert_cpu_backend_renders_the_module,
    assert_folded_forward_and_derivatives_match,
    random_lfn,
    random_rays,
)
from tools.train import initialize_from


def test_features_are_the_input_then_sines_then_cosines_at_octaves():
    x = torch.tensor([[0.25, -0.5]])
    features = fourier_features(x, 2)
    assert features.shape == (1, encoded_dim(2, 2)) == (1, 10)
    angles = torch.pi * torch.tensor([0.25, -0.5, 0.5, -1.0])  # frequency-major: pi x, then 2 pi x
    assert torch.allclose(features, torch.cat([x[0], angles.sin(), angles.cos()])[None])
    assert fourier_features(x, 0) is x


def test_tangents_are_the_features_derivative():
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    t = torch.randn(2, 4, 5, 6, dtype=torch.float64)
    for i in range(2):
        _, expected = torch.func.jvp(lambda v: fourier_features(v, 3), (x,), (t[i],))
        assert torch.allclose(fourier_tangents(x, t, 3)[i], expected)


def test_folded_forward_and_its_derivatives_match_the_module():
    assert_folded_forward_and_derivatives_match(random_lfn(frequencies=4))


@pytest.mark.parametrize("backend", ["eager", "torchscript", "export"])
def test_every_cpu_backend_renders_the_encoded_rays(backend):
    assert_cpu_backend_renders_the_module(random_lfn(frequencies=3).float(), backend)


def test_the_first_layer_names_the_encoding_and_triton_refuses_one():
    folded = random_lfn(frequencies=5).specialize(torch.zeros(8, dtype=torch.float64))
    assert encoding_frequencies(folded[0]) == 5
    assert encoding_frequencies(random_lfn().specialize(torch.zeros(8, dtype=torch.float64))[0]) == 0
    with pytest.raises(ValueError, match="encodes no 6-D ray"):
        encoding_frequencies(torch.zeros(32, 9))
    with pytest.raises(ValueError, match="raw Plücker rays"):
        TritonBackend(folded, torch.float16)


def test_a_raw_checkpoint_starts_an_encoded_run_as_the_same_function(tmp_path):
    raw = random_lfn(frequencies=0).float()
    path = tmp_path / "raw.pt"
    save_checkpoint(raw, ["a", "b", "c"], {}, path)
    encoded = LightFieldNetwork(LFNConfig(num_instances=2, frequencies=6, **TINY))
    started = initialize_from(encoded, str(path), ["c", "new"])
    assert started.codes_copied == 1
    rays = random_rays(1, 32).float()
    code = raw.latents.weight[2:3]
    assert torch.allclose(encoded.plucker_colors(rays, encoded.latents.weight[:1]),
                          raw.plucker_colors(rays, code), atol=1e-6)
    assert torch.equal(encoded.net.layers[0].weight[:, 6:], torch.zeros(32, encoded_dim(6, 6) - 6))
    # the other way (an encoded start for a raw run) is another architecture
    save_checkpoint(encoded, ["c", "new"], {}, tmp_path / "encoded.pt")
    with pytest.raises(ValueError, match="architecture"):
        initialize_from(random_lfn().float(), str(tmp_path / "encoded.pt"), ["c"])
