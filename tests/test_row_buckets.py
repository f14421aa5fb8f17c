"""A CPU's bf16 and fp16 evaluations pad their rows to a few bucketed counts (models/mlp.py): oneDNN
keeps state for every row count it multiplies, which grew a bf16 viewer by ~0.6 GB over a chaos run."""

import torch

from models import depth as depth_module
from models.cameras import orbit_pose
from models.depth import color_derivatives
from models.folded_field import FoldedField
from models.mlp import MIN_ROW_BUCKET, in_row_buckets, mlp_forward, row_bucket
from models.occupancy import OccupancyGrid, march
from models.renderer import LFNRenderer, frame_rays
from tests.conftest import tiny_lfn, tiny_volumetric


def test_row_buckets_are_few_and_pad_at_most_an_eighth():
    counts = range(1, 1 << 18)
    buckets = {row_bucket(n) for n in counts}
    assert len(buckets) <= 100  # every count up to 2^18 shares ~80 shapes
    assert all(n <= row_bucket(n) <= max(n + MIN_ROW_BUCKET - 1, n * 1.125) for n in counts)
    assert row_bucket(0) == 0 and row_bucket(4096) == 4096  # a full CPU slice is not padded


def test_bucketed_rows_give_each_row_its_own_result_and_fp32_is_left_alone():
    torch.manual_seed(0)
    tensors = (torch.randn(32, 6), torch.randn(32), torch.randn(2, 32, 32), torch.randn(2, 32),
               torch.randn(3, 32), torch.randn(3))
    x = torch.randn(1000, 6)
    seen = []

    def evaluate(rows, dtype):
        seen.append(rows.shape[0])
        return mlp_forward(rows.to(dtype), *(t.to(dtype) for t in tensors))

    bf16 = in_row_buckets(lambda rows: evaluate(rows, torch.bfloat16), x, torch.bfloat16)
    assert seen == [row_bucket(1000)] and row_bucket(1000) > 1000
    assert torch.equal(bf16, evaluate(x, torch.bfloat16))  # rows are multiplied independently
    fp32 = in_row_buckets(lambda rows: evaluate(rows, torch.float32), x, torch.float32)
    assert seen[-1] == 1000 and torch.equal(fp32, evaluate(x, torch.float32))  # MKL: no padding


def test_a_bf16_march_on_a_cpu_multiplies_only_bucketed_row_counts(monkeypatch):
    model = tiny_volumetric()
    tensors = tuple(t.detach().bfloat16() for t in model.specialize(model.latents.weight[1]))
    counts = []
    forward = mlp_forward

    def counting(x, *weights):
        counts.append(x.shape[0])
        return forward(x, *weights)

    monkeypatch.setattr("models.folded_field.mlp_forward", counting)
    origins, dirs = (t.bfloat16() for t in frame_rays(orbit_pose(40.0, 25.0, 3.0), 12, torch.device("cpu")))
    field = FoldedField(tensors, model.config.frequencies)
    full = OccupancyGrid(torch.ones(8, 8, 8, dtype=torch.bool))
    result = march(origins, dirs, field, model.config.samples_per_ray, full)
    assert result.rounds >= 2 and len(counts) == result.rounds
    assert all(count == row_bucket(count) for count in counts)


def test_a_bf16_depth_frame_on_a_cpu_multiplies_only_bucketed_row_counts(monkeypatch):
    model = tiny_lfn()
    renderer = LFNRenderer(model, precision="bf16", backend="eager")
    counts = []
    forward, with_tangents = depth_module.mlp_forward, depth_module.mlp_forward_with_tangents

    def counting(x, *weights):
        counts.append(x.shape[0])
        return forward(x, *weights)

    def counting_tangents(x, tangents, *weights):
        counts.append(x.shape[0])
        return with_tangents(x, tangents, *weights)

    monkeypatch.setattr(depth_module, "mlp_forward", counting)
    monkeypatch.setattr(depth_module, "mlp_forward_with_tangents", counting_tangents)
    color, derivatives = color_derivatives(renderer, orbit_pose(40.0, 25.0, 3.0), 21)  # 441 rays
    assert color.shape == (441, 3) and derivatives.shape == (4, 441, 3)
    assert counts and all(count == row_bucket(count) for count in counts)
