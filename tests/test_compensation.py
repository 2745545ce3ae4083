"""Least-squares compensation (compensate="ls") and the covariance it is computed from."""

from __future__ import annotations

import copy

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize
from vbprune.core.least_squares import least_squares_correction
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
    generator = torch.Generator().manual_seed(0)
    w2 = torch.randn(5, width, dtype=torch.float64, generator=generator)
    b2 = torch.randn(5, dtype=torch.float64, generator=generator)
    mean, cov = data.mean(0), torch.cov(data.T)
    for keep_count in (2, 6, 10):
        keep, pruned = torch.arange(keep_count), torch.arange(keep_count, width)
        ls = least_squares_correction(w2, keep, pruned, mean, cov)
        fold = (torch.zeros(5, keep_count, dtype=torch.float64), w2[:, pruned] @ mean[pruned])
        ls_error, fold_error = (fc2_error(w2, b2, data, keep, *c) for c in (ls, fold))
        assert ls_error < fold_error
        if keep_count >= 3:  # enough kept neurons to span the 3 shared factors
            assert ls_error < 0.5 * fold_error
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


def test_ls_or_obs_without_covariance_or_with_nan_is_refused_before_anything_changes(images):
    model = randomize(FAMILIES["timm-vit"]())
    state = copy.deepcopy(model.state_dict())
    plain = vbprune.VarianceCalibrator(model).run([images])
    with pytest.raises(vbprune.StatisticsError, match="covariance=True"):
        vbprune.prune_model(model, plain, ratio=0.5, compensate="ls")
    with pytest.raises(vbprune.StatisticsError, match='criterion="obs" needs the covariance'):
        vbprune.prune_model(model, plain, ratio=0.5, criterion="obs")
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
    from vbprune.core.least_squares import lost_output_variance

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


# --- the covariance on a subset of tokens, and the half Gram matrix -------------------


def test_half_gram_matrix_equals_the_full_product():
    from vbprune.core.statistics import symmetric_gram

    rows = torch.randn(50, 13, dtype=torch.float64)
    for block in (1, 4, 5, 13):  # blocks that do and do not divide the width
        torch.testing.assert_close(symmetric_gram(rows, block=block), rows.T @ rows)


def test_subset_covariance_keeps_the_exact_diagonal_and_estimates_the_rest():
    data = correlated(samples=4000, width=12).float().view(40, 100, 12)  # 40 images
    full = NeuronStats.empty(12, covariance=True)
    subset = NeuronStats.empty(12, covariance=True)
    generator = torch.Generator().manual_seed(0)
    for batch in data.split(8):
        full.update(batch)
        subset.update(batch, covariance_fraction=0.25, generator=generator)
    # means and variances use every token: the same as without a subset
    assert torch.equal(subset.mean, full.mean) and torch.equal(subset.m2, full.m2)
    assert torch.equal(subset.cov.diagonal(), subset.var)  # exact, not estimated
    assert torch.linalg.eigvalsh(subset.cov).min() > -1e-9  # still a covariance
    correlation = lambda c: c / torch.outer(c.diagonal(), c.diagonal()).sqrt()  # noqa: E731
    error = (correlation(subset.cov) - correlation(full.cov)).abs().max()
    assert 0 < error < 0.05  # 1000 of 4000 tokens: close, not equal
    # the draws are seeded
    again = NeuronStats.empty(12, covariance=True)
    generator = torch.Generator().manual_seed(0)
    for batch in data.split(8):
        again.update(batch, covariance_fraction=0.25, generator=generator)
    assert torch.equal(again.c2, subset.c2)


def test_calibrator_covariance_fraction_on_feature_maps_and_bad_values(images):
    model = randomize(FAMILIES["timm-convnext"]())
    full = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    quarter = vbprune.VarianceCalibrator(model, covariance=True, covariance_fraction=0.25)
    part = quarter.run([images])
    for name, entry in part.items():
        assert torch.equal(entry.var, full[name].var)
        assert torch.equal(entry.cov.diagonal(), entry.var)
        assert not torch.equal(entry.c2, full[name].c2)
    # without covariance the fraction has nothing to do: the same variances
    plain = vbprune.VarianceCalibrator(model, covariance_fraction=0.25).run([images])
    assert all(torch.equal(plain[n].m2, full[n].m2) and plain[n].c2 is None for n in full)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(vbprune.ConfigError, match="covariance_fraction"):
            vbprune.VarianceCalibrator(model, covariance=True, covariance_fraction=bad)


# --- the OBS criterion ------------------------------------------------------------------


def ls_error(w2, cov, removed: list[int]) -> float:
    """Expected squared error of fc2's output after removing ``removed`` with least squares
    (no damping)."""
    from vbprune.core.least_squares import lost_output_variance

    width = cov.shape[0]
    pruned = torch.tensor(removed)
    keep = torch.tensor([i for i in range(width) if i not in set(removed)])
    delta_w, _ = least_squares_correction(w2, keep, pruned, cov[0], cov, damping=0.0)
    total = float(torch.einsum("oi,ij,oj->", w2, cov, w2))
    return lost_output_variance(w2, keep, pruned, cov, delta_w) * total


def test_obs_order_is_the_greedy_least_squares_order():
    from vbprune.core.least_squares import obs_removal_scores

    data = correlated(width=10)
    cov = torch.cov(data.T)
    w2 = torch.randn(4, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    scores = obs_removal_scores(w2, cov, damping=0.0, block=1)
    order = scores.argsort().tolist()
    assert torch.isinf(scores[order[-1]]) and (scores[order[:-1]].diff() > 0).all()
    removed: list[int] = []
    increases = []
    for _ in range(6):  # each step removes the neuron that least raises the error
        errors = {j: ls_error(w2, cov, [*removed, j]) for j in range(10) if j not in removed}
        best = min(errors, key=errors.get)
        assert order[len(removed)] == best
        increases.append(errors[best] - (ls_error(w2, cov, removed) if removed else 0.0))
        removed.append(best)
    # the scores are those increases, made increasing by a running maximum
    expected = torch.tensor(increases, dtype=torch.float64).cummax(0).values
    torch.testing.assert_close(scores[order[:6]], expected, rtol=1e-6, atol=1e-9)


def test_obs_without_correlation_ranks_by_output_energy_and_constants_go_first():
    from vbprune.core.least_squares import obs_removal_scores

    variances = torch.tensor([4.0, 0.0, 1.0, 9.0, 0.25], dtype=torch.float64)
    w2 = torch.tensor([[1.0, 5.0, 3.0, 0.1, 2.0]], dtype=torch.float64)
    scores = obs_removal_scores(w2, torch.diag(variances), block=1)
    energy = w2[0] ** 2 * variances  # what each neuron alone adds to fc2's output
    assert scores.argsort()[:-1].tolist() == energy.argsort()[:-1].tolist()
    # the constant one: only the damping (1e-4 of the mean variance) keeps it above 0
    assert scores[1] < 1e-2 * scores[scores.isfinite()].max()


def test_obs_criterion_prunes_with_ls_and_keeps_the_counts(images):
    torch.manual_seed(0)
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    # what fc2's outputs vary by on the calibration data, per MLP (trace W2 S W2^T)
    energy = {s.name: float(torch.einsum("oi,ij,oj->", s.fc2.weight.detach().double(),
                                         stats[s.name].cov, s.fc2.weight.detach().double()))
              for s in vbprune.find_mlp_sites(model)}  # fmt: skip
    errors = {}
    for criterion in ("variance", "obs"):
        pruned = copy.deepcopy(model)
        result = vbprune.prune_model(pruned, stats, ratio=0.7, criterion=criterion,
                                     compensate="ls", round_to=4, diagnose=True)  # fmt: skip
        assert all(w % 4 == 0 for w in result.widths.values())
        assert result.num_pruned == vbprune.prune_model(
            copy.deepcopy(model), stats, ratio=0.7, round_to=4).num_pruned  # fmt: skip
        # the squared error least squares leaves in the MLPs' outputs, summed over MLPs:
        # what the OBS order greedily keeps small
        errors[criterion] = sum(lost["ls"] * energy[name]
                                for name, lost in result.lost_variance.items())  # fmt: skip
    assert errors["obs"] < 0.9 * errors["variance"]


@pytest.mark.parametrize("criterion", ["variance", "obs"])
def test_a_saved_least_squares_plan_replays_to_identical_outputs(images, tmp_path, criterion):
    import json

    torch.manual_seed(0)
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True).run([images])
    pruned = copy.deepcopy(model)
    result = vbprune.prune_model(pruned, stats, ratio=0.6, criterion=criterion, compensate="ls")
    (tmp_path / "plan.json").write_text(json.dumps(result.plan.to_dict()))
    stats.save(tmp_path / "stats.safetensors")
    # another process, later: the plan and the statistics file are all it needs
    plan = vbprune.PruningPlan.from_dict(json.loads((tmp_path / "plan.json").read_text()))
    replayed = copy.deepcopy(model)
    vbprune.apply_plan(
        replayed, plan, stats=vbprune.ActivationStats.load(tmp_path / "stats.safetensors")
    )
    assert plan.config.compensate == "ls" and plan.config.criterion == criterion
    assert torch.equal(logits(replayed, images), logits(pruned, images))
