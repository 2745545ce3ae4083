"""Bad input to prune_model raises a clear error and leaves the model unchanged."""

from __future__ import annotations

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, randomize
from vbprune import ActivationStats, NeuronStats


@pytest.fixture
def model_and_stats(images):
    model = randomize(FAMILIES["timm-swin"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    return model, stats


def snapshot(model):
    # repr shows module metadata (in_features, out_channels, ...), the dict the tensors.
    return repr(model), {k: v.clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    text, tensors = before
    assert repr(model) == text
    after = model.state_dict()
    assert after.keys() == tensors.keys()
    assert all(torch.equal(after[k], tensors[k]) for k in tensors)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ratio": 1.0}, r"ratio must be in \[0, 1\), got 1.0"),
        ({"ratio": -0.2}, r"got -0.2"),
        ({"ratio": 0.5, "scope": "blocks"}, r"scope must be one of .* got 'blocks'"),
        ({"ratio": 0.5, "round_to": -8}, r"round_to must be a positive integer, got -8"),
    ],
)
def test_bad_options(model_and_stats, kwargs, match):
    model, stats = model_and_stats
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        vbprune.prune_model(model, stats, **kwargs)
    assert_unchanged(model, before)


def test_statistics_missing_a_site(model_and_stats):
    model, stats = model_and_stats
    before = snapshot(model)
    partial = ActivationStats({k: v for k, v in stats.items() if k != "layers.1.blocks.1.mlp"})
    with pytest.raises(ValueError, match=r"layers\.1\.blocks\.1\.mlp"):
        vbprune.prune_model(model, partial, 0.5)
    assert_unchanged(model, before)


def test_statistics_of_wrong_width(model_and_stats):
    model, stats = model_and_stats
    before = snapshot(model)
    wrong = dict(stats)
    wrong["layers.0.blocks.0.mlp"] = NeuronStats(
        10, torch.zeros(63, dtype=torch.float64), torch.ones(63, dtype=torch.float64)
    )
    with pytest.raises(ValueError, match=r"shape \(63,\), the model has 64 neurons"):
        vbprune.prune_model(model, ActivationStats(wrong), 0.5)
    assert_unchanged(model, before)


def test_non_finite_statistics(model_and_stats):
    model, stats = model_and_stats
    before = snapshot(model)
    bad = dict(stats)
    m2 = stats["layers.0.blocks.0.mlp"].m2.clone()
    m2[0] = float("nan")
    bad["layers.0.blocks.0.mlp"] = NeuronStats(
        stats["layers.0.blocks.0.mlp"].count, stats["layers.0.blocks.0.mlp"].mean, m2
    )
    with pytest.raises(ValueError, match="NaN"):
        vbprune.prune_model(model, ActivationStats(bad), 0.5)
    assert_unchanged(model, before)


def test_unsupported_model_is_unchanged(model_and_stats):
    _, stats = model_and_stats
    other = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 4))
    before = snapshot(other)
    with pytest.raises(vbprune.UnsupportedModelError, match="Sequential"):
        vbprune.prune_model(other, stats, 0.5)
    assert_unchanged(other, before)


def test_plan_for_another_model_is_refused_before_changes(model_and_stats, images):
    model, stats = model_and_stats
    plan = vbprune.plan_pruning(stats, 0.5)
    other = randomize(FAMILIES["timm-vit"]())
    before = snapshot(other)
    with pytest.raises(ValueError, match="plan does not fit"):
        vbprune.apply_plan(other, plan)
    assert_unchanged(other, before)
    # and the plan replays on its own model: same widths as prune_model
    widths = vbprune.apply_plan(model, plan)
    assert widths == plan.widths


def test_statistics_with_m2_of_other_width(model_and_stats):
    model, stats = model_and_stats
    before = snapshot(model)
    bad = dict(stats)
    good = stats["layers.0.blocks.0.mlp"]
    bad["layers.0.blocks.0.mlp"] = NeuronStats(good.count, good.mean, good.m2[:10])
    with pytest.raises(ValueError, match=r"layers\.0\.blocks\.0\.mlp have shape"):
        vbprune.prune_model(model, ActivationStats(bad), 0.5)
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda e: e.keep.__setitem__(-1, e.width + 5), "outside"),
        (lambda e: e.keep.__setitem__(1, e.keep[0]), "increasing"),
        (lambda e: e.fold_mean.pop(), "fold_mean"),
        (lambda e: e.fold_mean.__setitem__(0, float("nan")), "fold_mean"),
    ],
)
def test_malformed_plan_leaves_model_unchanged(model_and_stats, corrupt, match):
    model, stats = model_and_stats
    plan = vbprune.plan_pruning(stats, 0.5)
    corrupt(plan.sites["layers.1.blocks.1.mlp"])  # the last site: the others come first
    before = snapshot(model)
    with pytest.raises(ValueError, match=match):
        vbprune.apply_plan(model, plan)
    assert_unchanged(model, before)
