"""Removing neurons whose activation is constant leaves the model's output unchanged."""

from __future__ import annotations

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize


def force_constant(model, counts_per_site, seed=0):
    """Zero fc1's weight rows of some neurons: their activation is act(b1), a constant."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for site, count in zip(vbprune.find_mlp_sites(model), counts_per_site):
            idx = torch.randperm(site.width, generator=generator)[:count]
            site.fc1.weight[idx] = 0.0
            # Well away from zero so that act(b1) * W2 moves the output if not folded.
            site.fc1.bias[idx] = 1.0 + torch.rand(count, generator=generator)


def relative_change(a, b):
    return float((a - b).norm() / a.norm())


@pytest.mark.parametrize("round_to", [1, 8])
def test_constant_neurons_are_removed_exactly(family, images, round_to):
    model = randomize(FAMILIES[family]())
    sites = vbprune.find_mlp_sites(model)
    # Different counts per site; multiples of round_to so that the rounded widths hit
    # exactly the constant neurons.
    counts = [8 * (1 + i % 2) for i in range(len(sites))]
    force_constant(model, counts)
    widths = [s.width for s in sites]
    ratio = sum(counts) / sum(widths)
    before = logits(model, images)
    stats = vbprune.VarianceCalibrator(model).run([images[:2], images[2:]])

    undo = randomize(FAMILIES[family]())
    undo.load_state_dict(model.state_dict())
    result = vbprune.prune_model(model, stats, ratio, round_to=round_to)
    after = logits(model, images)

    expected = {s.name: w - c for s, w, c in zip(sites, widths, counts)}
    assert result.widths == expected
    for site in vbprune.find_mlp_sites(model):
        assert site.fc1.weight.shape[0] == expected[site.name]
        assert site.fc2.weight.shape[1] == expected[site.name]
    assert relative_change(before, after) < 1e-5

    # The same removal without the fold moves the output: the check above is sensitive.
    vbprune.prune_model(undo, stats, ratio, round_to=round_to, compensate=False)
    assert relative_change(before, logits(undo, images)) > 1e-3


def test_fold_creates_fc2_bias_when_missing(images):
    model = randomize(FAMILIES["timm-vit"]())
    site = vbprune.find_mlp_sites(model)[0]
    force_constant(model, [16, 0])
    site.fc2.bias = None
    before = logits(model, images)
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, 16 / 256)
    assert site.fc2.bias is not None and site.fc2.bias.abs().sum() > 0
    assert site.fc2.bias.requires_grad  # trainable in the fine-tuning that follows
    assert relative_change(before, logits(model, images)) < 1e-5


def test_shrunk_modules_report_their_width(images):
    model = randomize(FAMILIES["timm-convnextv2-convmlp"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    result = vbprune.prune_model(model, stats, 0.5)
    for site in vbprune.find_mlp_sites(model):
        width = result.widths[site.name]
        assert site.fc1.out_channels == width == site.fc2.in_channels
        assert site.grn.weight.shape == (width,) and site.grn.bias.shape == (width,)
        assert site.fc2.weight.is_contiguous()
    assert logits(model, images).shape == (4, 10)
