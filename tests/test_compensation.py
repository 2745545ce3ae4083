"""Least-squares compensation (compensate="ls") and the covariance it is computed from."""

from __future__ import annotations

import copy

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize
from vbprune.core.compensation import least_squares_correction
from vbprune.core.statistics import NeuronStats


def correlated(samples: int = 400, width: int = 12, seed: int = 0) -> torch.Tensor:
    """Hidden activations whose neurons share a few latent factors, float64."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn(samples, 3, generator=generator, dtype=torch.float64)
    mixing = torch.randn(3, width, generator=generator, dtype=torch.float64)
    noise = 0.3 * torch.randn(samples, width, generator=generator, dtype=torch.float64)
    return factors @ mixing + noise + torch.linspace(-1, 2, width, dtype=torch.float64)


def test_streaming_covariance_equals_torch_cov_of_the_concatenation():
    batches = [correlated(seed=s).float().view(4, -1, 12) for s in range(3)]
    stats = NeuronStats.empty(12, covariance=True)
    for batch in batches:
        stats.update(batch)
    every = torch.cat([b.reshape(-1, 12) for b in batches]).double()
    torch.testing.assert_close(stats.cov, torch.cov(every.T), rtol=0, atol=1e-6)
    torch.testing.assert_close(stats.cov.diagonal(), stats.var, rtol=0, atol=1e-6)
    halves = NeuronStats.empty(12, covariance=True), NeuronStats.empty(12, covariance=True)
    for index, batch in enumerate(batches):
        halves[index % 2].update(batch)
    # batches reduced in float32 around other shifts: equal to float32 rounding
    torch.testing.assert_close(halves[0].merge(halves[1]).cov, stats.cov, rtol=0, atol=1e-6)


def test_covariance_is_saved_and_loaded_bit_for_bit(tmp_path):
    stats = NeuronStats.empty(12, covariance=True)
    stats.update(correlated().float())
    saved = vbprune.ActivationStats({"mlp": stats})
    saved.save(tmp_path / "stats.safetensors")
    loaded = vbprune.ActivationStats.load(tmp_path / "stats.safetensors")["mlp"]
    assert torch.equal(loaded.c2, stats.c2) and loaded.count == stats.count
    without = NeuronStats.empty(12)
    with pytest.raises(vbprune.StatisticsError, match="covariance=True"):
        _ = without.cov


def test_least_squares_equals_the_regression_of_removed_on_kept_neurons():
    data = correlated()
    width = data.shape[1]
    w2 = torch.randn(5, width, dtype=torch.float64)
    keep, pruned = torch.arange(0, width, 2), torch.arange(1, width, 2)
    mean, cov = data.mean(0), torch.cov(data.T)
    delta_w, delta_b = least_squares_correction(w2, keep, pruned, mean, cov, damping=0.0)
    # the same fit by lstsq on the samples: a_P ~ a_K B + c
    design = torch.cat([data[:, keep], torch.ones(len(data), 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, data[:, pruned]).solution  # (K + 1, P)
    torch.testing.assert_close(delta_w, w2[:, pruned] @ solution[:-1].T)
    torch.testing.assert_close(delta_b, w2[:, pruned] @ solution[-1])


def fc2_error(w2, b2, data, keep, delta_w, delta_b) -> float:
    """Mean squared error of fc2's output with only the kept neurons, after a correction."""
    full = data @ w2.T + b2
    pruned = data[:, keep] @ (w2[:, keep] + delta_w).T + b2 + delta_b
    return float((full - pruned).square().mean())


def test_least_squares_never_loses_to_the_mean_fold_and_equals_it_without_correlation():
    data = correlated()
    width = data.shape[1]
    w2, b2 = torch.randn(5, width, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    mean, cov = data.mean(0), torch.cov(data.T)
    for keep_count in (2, 6, 10):
        keep, pruned = torch.arange(keep_count), torch.arange(keep_count, width)
        ls = least_squares_correction(w2, keep, pruned, mean, cov)
        fold = (torch.zeros(5, keep_count, dtype=torch.float64), w2[:, pruned] @ mean[pruned])
        assert fc2_error(w2, b2, data, keep, *ls) < 0.5 * fc2_error(w2, b2, data, keep, *fold)
        # uncorrelated neurons: nothing to predict, the least squares fold is the mean fold
        delta_w, delta_b = least_squares_correction(
            w2, keep, pruned, mean, torch.diag(cov.diagonal())
        )
        assert not delta_w.any()
        torch.testing.assert_close(delta_b, fold[1])


def test_ls_removes_constant_neurons_without_changing_the_outputs(images):
    model = randomize(FAMILIES["timm-convnext"]())
    with torch.no_grad():  # every 3rd hidden neuron constant: zero rows, a bias
        for site in vbprune.find_mlp_sites(model):
            site.fc1.weight[::3] = 0
            site.fc1.bias[::3] = 0.7
    before = logits(model, images)
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    constant = sum(len(range(0, s.width, 3)) for s in vbprune.find_mlp_sites(model))
    total = sum(s.width for s in vbprune.find_mlp_sites(model))
    result = vbprune.prune_model(model, stats, ratio=constant / total, compensate="ls")
    assert result.num_pruned == constant and result.config.compensate == "ls"
    after = logits(model, images)
    assert (after - before).abs().max() <= 1e-5 * before.abs().max()


def test_ls_beats_the_mean_fold_on_a_model_and_reloads(images, tmp_path):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    before = logits(model, images)
    errors = {}
    for mode in ("mean", "ls"):
        pruned = copy.deepcopy(model)
        vbprune.prune_model(pruned, stats, ratio=0.7, compensate=mode)
        errors[mode] = float((logits(pruned, images) - before).square().mean())
        if mode == "ls":
            folder = vbprune.save_pretrained(pruned, tmp_path / "ls")
            assert torch.equal(logits(vbprune.from_pretrained(folder), images),
                               logits(pruned, images))  # fmt: skip
    assert errors["ls"] < errors["mean"]


def test_ls_without_covariance_or_with_nan_is_refused_before_anything_changes(images):
    model = randomize(FAMILIES["timm-vit"]())
    state = copy.deepcopy(model.state_dict())
    plain = vbprune.VarianceCalibrator(model).run([images])
    with pytest.raises(vbprune.StatisticsError, match="covariance=True"):
        vbprune.prune_model(model, plain, ratio=0.5, compensate="ls")
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    broken = dict(stats)
    name = next(iter(broken))
    poisoned = broken[name].c2.clone()
    poisoned[0, 1] = float("nan")
    broken[name] = NeuronStats(stats[name].count, stats[name].mean, stats[name].m2, poisoned)
    with pytest.raises(vbprune.StatisticsError, match="NaN"):
        vbprune.prune_model(model, vbprune.ActivationStats(broken), ratio=0.5, compensate="ls")
    plan = vbprune.plan_pruning(stats, config=vbprune.PruningConfig(ratio=0.5, compensate="ls"))
    with pytest.raises(vbprune.StatisticsError, match="needs the calibration statistics"):
        vbprune.apply_plan(model, plan)  # the plan alone cannot say how to refit fc2
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)


def test_lost_variance_matches_the_calibration_data_and_ls_loses_less():
    from vbprune.core.compensation import lost_output_variance

    data = correlated()
    width = data.shape[1]
    w2, b2 = torch.randn(5, width, dtype=torch.float64), torch.zeros(5, dtype=torch.float64)
    mean, cov = data.mean(0), torch.cov(data.T)
    keep, pruned = torch.arange(6), torch.arange(6, width)
    total = float(((data - mean) @ w2.T).square().sum(1).mean())
    fold = (torch.zeros(5, 6, dtype=torch.float64), w2[:, pruned] @ mean[pruned])
    ls = least_squares_correction(w2, keep, pruned, mean, cov, damping=0.0)
    for correction, delta_w in ((fold, None), (ls, ls[0])):
        # the same fraction measured on the samples (per-sample squared error, summed)
        measured = fc2_error(w2, b2, data, keep, *correction) * 5 / total
        predicted = lost_output_variance(w2, keep, pruned, cov, delta_w)
        assert predicted == pytest.approx(measured, rel=1e-2)
    assert lost_output_variance(w2, keep, pruned, cov, ls[0]) < lost_output_variance(
        w2, keep, pruned, cov
    )


def test_prune_report_diagnostics_with_covariance(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    result = vbprune.prune_model(model, stats, ratio=0.6, compensate="ls", diagnose=True)
    assert set(result.lost_variance) == set(result.widths)
    for lost in result.lost_variance.values():
        assert 0 <= lost["ls"] <= lost["mean"] <= 1
    plain = vbprune.VarianceCalibrator(model).run([images])
    assert vbprune.prune_model(model, plain, ratio=0.2, diagnose=True).lost_variance == {}
