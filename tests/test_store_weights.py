import torch

from models.checkpoint import load_checkpoint, save_checkpoint
from models.encoder import load_encoder, network_fingerprint, save_encoder
from tests.conftest import names, tiny_lfn
from tests.test_encoder import tiny_encoder
from tools import store_weights

META = {"steps": 0, "dataset": "none", "metrics": {}}


def test_half_weights_halve_the_file_and_report_how_far_the_colors_moved(tmp_path, capsys):
    model = tiny_lfn(num_instances=4)
    offset = 0.1 * torch.randn(2 * model.config.hidden_layers * model.config.width)
    save_checkpoint(model, names(4), META, tmp_path / "full.pt", {1: offset})
    assert store_weights.main(["--ckpt", str(tmp_path / "full.pt"), "--out", str(tmp_path / "half.pt"),
                               "--check-cars", "2", "--check-rays", "64"]) == 0
    half = load_checkpoint(tmp_path / "half.pt")
    assert half.weights_dtype == torch.float16 and half.instance_names == names(4)
    assert torch.equal(half.modulation_offsets[1], offset)
    assert (tmp_path / "half.pt").stat().st_size < 0.6 * (tmp_path / "full.pt").stat().st_size

    origins, dirs = store_weights.probe_rays(64)
    before = load_checkpoint(tmp_path / "full.pt")
    moved = half.model(origins[None], dirs[None], half.latents[3:]) \
        - before.model(origins[None], dirs[None], before.latents[3:])
    stored = store_weights.store_weights(store_weights.StoreWeightsConfig(
        tmp_path / "full.pt", tmp_path / "again.pt", torch.float16, check_cars=2, check_rays=64))
    assert stored.cars_compared == 2  # the first and the last car
    assert 0 < moved.abs().max() <= stored.max_color_difference < 1e-2
    assert stored.agreement_psnr > 50
    printed = capsys.readouterr().out
    assert "half.pt" in printed and "agree to" in printed and "dB PSNR" in printed


def test_back_to_float32_is_exact_and_bad_input_is_one_error_line(tmp_path, capsys):
    save_checkpoint(tiny_lfn(), names(3), META, tmp_path / "half.pt", weights_dtype=torch.float16)
    assert store_weights.main(["--ckpt", str(tmp_path / "half.pt"), "--out", str(tmp_path / "full.pt"),
                               "--dtype", "float32"]) == 0
    assert "agree to inf dB" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "full.pt").weights_dtype == torch.float32
    for argv in (["--ckpt", str(tmp_path / "half.pt"), "--out", str(tmp_path / "half.pt")],
                 ["--ckpt", str(tmp_path / "none.pt"), "--out", str(tmp_path / "x.pt")]):
        assert store_weights.main(argv) == 1
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1
    assert not (tmp_path / "x.pt").exists()


def test_an_encoder_is_stored_half_with_its_statistics_whole_and_its_network_kept(tmp_path, capsys):
    model = tiny_lfn(num_instances=3)
    encoder = tiny_encoder()
    with torch.no_grad():  # statistics unlike a fresh batch norm's, which rounding would keep exact
        for name, buffer in encoder.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0.0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(1e-3, 2.0)
    full, half = tmp_path / "full.encoder.pt", tmp_path / "half.encoder.pt"
    save_encoder(encoder, network_fingerprint(model), {"steps": 7}, full)
    assert store_weights.main(["--ckpt", str(full), "--out", str(half)]) == 0
    printed = capsys.readouterr().out
    assert "half.encoder.pt" in printed and "codes move by at most" in printed
    assert f"({store_weights.PROBE_PHOTOS} probe photos)" in printed

    stored = torch.load(half, weights_only=True)
    weights = {name for name, _ in encoder.named_parameters()}
    for name, tensor in stored["state_dict"].items():
        if name in weights:
            assert tensor.dtype == torch.float16
        elif tensor.is_floating_point():
            assert torch.equal(tensor, encoder.state_dict()[name])  # float32, as they were
    assert stored["meta"] == {"steps": 7}
    loaded = load_encoder(half, model)  # the network's fingerprint came along
    assert next(loaded.parameters()).dtype == torch.float32

    photos = store_weights.probe_photos(6, encoder.config.input_res)
    assert torch.all(photos[:, :, 0, 0] == 1.0) and torch.all(photos[:, :, -1, -1] == 1.0)
    assert torch.all((photos < 1.0).flatten(1).any(-1))  # white corners, a blob in each
    with torch.no_grad():
        moved = (loaded(photos).latent - encoder(photos).latent).norm(dim=-1)
    again = store_weights.store_weights(store_weights.StoreWeightsConfig(
        full, tmp_path / "again.encoder.pt", torch.float16))
    assert isinstance(again, store_weights.StoredEncoderWeights)
    assert moved.max() > 0 and 0 < again.max_latent_change < 1e-2
    assert again.bytes_after < again.bytes_before
