"""Streaming statistics equal torch.mean / torch.var of the concatenated samples."""

from __future__ import annotations

import pytest
import torch

from vbprune import ActivationStats, NeuronStats


def batches(dtype=torch.float64, offset=1000.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(6, generator=g, dtype=torch.float64) * 3
    sizes = [1, 7, 64, 3, 130]
    return [
        (offset + scale * torch.randn(n, 6, generator=g, dtype=torch.float64)).to(dtype)
        for n in sizes
    ]


def test_streaming_equals_torch_var_on_concatenation():
    data = batches()
    acc = NeuronStats.empty(6)
    for b in data:
        acc.update(b)
    whole = torch.cat(data)
    assert acc.count == whole.shape[0]
    torch.testing.assert_close(acc.mean, whole.mean(0), rtol=1e-12, atol=0)
    torch.testing.assert_close(acc.var, torch.var(whole, 0), rtol=1e-12, atol=0)


def test_merge_of_halves_equals_whole():
    data = batches()
    first, second, whole = NeuronStats.empty(6), NeuronStats.empty(6), NeuronStats.empty(6)
    for i, b in enumerate(data):
        (first if i < 2 else second).update(b)
        whole.update(b)
    merged = first.merge(second)
    assert merged.count == whole.count
    torch.testing.assert_close(merged.mean, whole.mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(merged.m2, whole.m2, rtol=1e-12, atol=0)


def test_float32_large_mean_small_spread_keeps_precision():
    # Nearly constant neurons (mean >> std) are the ones pruning ranks; a raw sum of
    # squares in float32 would lose their variance entirely.
    g = torch.Generator().manual_seed(0)
    data = [100.0 + 1e-2 * torch.randn(500, 4, generator=g, dtype=torch.float64) for _ in range(4)]
    acc = NeuronStats.empty(4)
    for b in data:
        acc.update(b.float())
    reference = torch.var(torch.cat([b.float().double() for b in data]), 0)
    torch.testing.assert_close(acc.var, reference, rtol=1e-3, atol=0)


def test_channel_dim_of_feature_maps():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(3, 5, 4, 4, generator=g, dtype=torch.float64)  # (B, H, h, w)
    acc = NeuronStats.empty(5)
    acc.update(maps, channel_dim=1)
    samples = maps.permute(0, 2, 3, 1).reshape(-1, 5)  # (B*h*w, H)
    assert acc.count == 48
    torch.testing.assert_close(acc.mean, samples.mean(0), rtol=1e-12, atol=0)
    torch.testing.assert_close(acc.var, samples.var(0), rtol=1e-12, atol=0)


def test_variance_of_fewer_than_two_samples_is_nan():
    acc = NeuronStats.empty(3)
    acc.update(torch.ones(1, 3))
    assert torch.isnan(acc.var).all()


def make_stats():
    data = batches()
    a, b = NeuronStats.empty(6), NeuronStats.empty(6)
    for x in data:
        a.update(x)
        b.update(x[:, :3].repeat(1, 2) * 2)
    return ActivationStats({"blocks.0.mlp": a, "blocks.1.mlp": b})


def test_save_load_round_trip_is_bit_exact(tmp_path):
    stats = make_stats()
    path = tmp_path / "sub" / "stats.safetensors"
    stats.save(path)
    loaded = ActivationStats.load(path)
    assert list(loaded) == list(stats)
    for name in stats:
        assert loaded[name].count == stats[name].count
        assert torch.equal(loaded[name].mean, stats[name].mean)
        assert torch.equal(loaded[name].m2, stats[name].m2)
    assert sorted(p.name for p in path.parent.iterdir()) == ["stats.safetensors"]


def test_activation_stats_merge_and_errors(tmp_path):
    stats = make_stats()
    doubled = stats.merge(stats)
    assert doubled["blocks.0.mlp"].count == 2 * stats["blocks.0.mlp"].count
    torch.testing.assert_close(doubled["blocks.0.mlp"].mean, stats["blocks.0.mlp"].mean)
    with pytest.raises(ValueError, match=r"blocks\.1\.mlp"):
        stats.merge(ActivationStats({"blocks.0.mlp": stats["blocks.0.mlp"]}))
    with pytest.raises(FileNotFoundError):
        ActivationStats.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a vbprune"):
        ActivationStats.load(tmp_path / "other.safetensors")
