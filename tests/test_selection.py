"""Selection removes exactly the specified count, lowest variance first, deterministically."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from vbprune import NeuronStats, PruningPlan, plan_pruning, select_neurons


def random_variances(widths=(48, 64, 32, 96), seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        f"blocks.{i}.mlp": torch.rand(w, generator=g) * (1 + 0.2 * i) for i, w in enumerate(widths)
    }


def removed_count(variances, keep):
    return sum(v.numel() - keep[name].numel() for name, v in variances.items())


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.29, 0.5, 0.55, 0.9])
def test_global_removes_floor_ratio_total_lowest_variances(ratio):
    variances = random_variances()
    keep = select_neurons(variances, ratio)
    total = sum(v.numel() for v in variances.values())
    assert removed_count(variances, keep) == math.floor(round(ratio * total, 9))
    kept = torch.cat([variances[n][keep[n]] for n in variances])
    masks = {n: torch.ones(v.numel(), dtype=torch.bool) for n, v in variances.items()}
    for name, idx in keep.items():
        masks[name][idx] = False
    removed = torch.cat([variances[n][masks[n]] for n in variances])
    if removed.numel() and all(k.numel() > 1 for k in keep.values()):  # min_keep not binding
        assert removed.max() <= kept.min()


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.75])
def test_layer_removes_floor_ratio_width_per_site(ratio):
    variances = random_variances()
    keep = select_neurons(variances, ratio, scope="layer")
    for name, v in variances.items():
        assert v.numel() - keep[name].numel() == math.floor(ratio * v.numel())
        dropped = torch.ones(v.numel(), dtype=torch.bool)
        dropped[keep[name]] = False
        if dropped.any():
            assert v[dropped].max() <= v[keep[name]].min()


def test_ties_broken_by_layer_order_then_index_and_deterministic():
    variances = {"a": torch.zeros(4), "b": torch.zeros(4)}
    keep = select_neurons(variances, 0.5)
    # Equal variances: earlier site and lower index go first, min_keep=1 stops site a.
    assert keep["a"].tolist() == [3] and keep["b"].tolist() == [1, 2, 3]
    again = select_neurons(variances, 0.5)
    assert all(torch.equal(keep[n], again[n]) for n in keep)


def test_min_keep_holds_and_count_stays_exact():
    variances = {"dead": torch.full((32,), 1e-9), "alive": torch.rand(32) + 1}
    keep = select_neurons(variances, 0.5, min_keep=4)
    assert keep["dead"].numel() == 4
    assert removed_count(variances, keep) == 32
    with pytest.raises(ValueError, match="min_keep"):
        select_neurons(variances, 0.95, min_keep=4)
    with pytest.raises(ValueError, match="min_keep"):
        select_neurons(variances, 0.95, scope="layer", min_keep=4)


@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("ratio", [0.3, 0.45, 0.62])
def test_round_to_gives_multiples_with_closest_total(scope, ratio):
    variances = random_variances(widths=(48, 64, 32, 96, 40))
    multiple = 8
    exact = select_neurons(variances, ratio, scope=scope)
    rounded = select_neurons(variances, ratio, scope=scope, round_to=multiple)
    target = sum(k.numel() for k in exact.values())
    widths = {n: k.numel() for n, k in rounded.items()}
    assert all(w % multiple == 0 for w in widths.values())
    # No choice of per-site floor/ceil multiples gets nearer to the target.
    options = [
        {multiple * (k.numel() // multiple), multiple * math.ceil(k.numel() / multiple)}
        for k in exact.values()
    ]
    best = min(abs(sum(c) - target) for c in itertools.product(*options))
    assert abs(sum(widths.values()) - target) == best
    # Within a site, the kept neurons are still the highest-variance ones.
    for name, idx in rounded.items():
        dropped = torch.ones(variances[name].numel(), dtype=torch.bool)
        dropped[idx] = False
        if dropped.any() and idx.numel():
            assert variances[name][dropped].max() <= variances[name][idx].min()


def test_round_to_keeps_full_width_when_not_a_multiple():
    keep = select_neurons({"a": torch.rand(10)}, 0.05, round_to=8)
    assert keep["a"].numel() == 10


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"ratio": -0.1}, ValueError),
        ({"ratio": 1.0}, ValueError),
        ({"ratio": float("nan")}, ValueError),
        ({"ratio": True}, TypeError),
        ({"ratio": "0.5"}, TypeError),
        ({"ratio": 0.5, "scope": "block"}, ValueError),
        ({"ratio": 0.5, "min_keep": 0}, ValueError),
        ({"ratio": 0.5, "round_to": 0}, ValueError),
    ],
)
def test_bad_options_raise(kwargs, error):
    with pytest.raises(error, match=r"ratio|scope|min_keep|round_to"):
        select_neurons(random_variances(), **kwargs)


def test_plan_is_json_serialisable_and_records_fold_means():
    g = torch.Generator().manual_seed(0)
    stats = {}
    for i, width in enumerate((16, 24)):
        acc = NeuronStats.empty(width)
        acc.update(torch.randn(50, width, generator=g, dtype=torch.float64) * (i + 1) + 3)
        stats[f"blocks.{i}.mlp"] = acc
    plan = plan_pruning(stats, 0.4)
    assert plan.num_pruned == math.floor(0.4 * 40)
    replayed = PruningPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert replayed == plan
    for name, site in plan.sites.items():
        assert site.fold_mean == stats[name].mean[site.pruned].tolist()
        assert sorted(site.keep + site.pruned) == list(range(site.width))


@pytest.mark.parametrize("seed", range(40))
def test_round_to_is_optimal_with_uneven_widths_and_min_keep(seed):
    g = torch.Generator().manual_seed(seed)
    widths = torch.randint(3, 40, (4,), generator=g).tolist()
    variances = {f"m{i}": torch.rand(w, generator=g) for i, w in enumerate(widths)}
    multiple, min_keep = 4, int(torch.randint(1, 4, (1,), generator=g))
    ratio = float(torch.rand(1, generator=g)) * 0.8
    exact = select_neurons(variances, ratio, min_keep=min_keep)
    rounded = select_neurons(variances, ratio, min_keep=min_keep, round_to=multiple)
    target = sum(k.numel() for k in exact.values())

    def allowed(width):  # multiples of 4 from the min_keep floor up, or the full width
        lowest = min(width, multiple * -(-min_keep // multiple))
        return {k for k in range(lowest, width + 1) if k % multiple == 0 or k == width}

    got = [rounded[n].numel() for n in variances]
    assert all(k in allowed(w) for k, w in zip(got, widths))
    # Brute force over each site's multiple below and allowed width above its target:
    # no combination is nearer to the target.
    choices = []
    for k, w in zip((e.numel() for e in exact.values()), widths):
        options = allowed(w)
        multiples = {o for o in options if o % multiple == 0 or o < multiple}
        below = max((o for o in multiples if o <= k), default=None)
        above = min((o for o in options if o >= k), default=None)
        choices.append({below, above} - {None})
    best = min(abs(sum(c) - target) for c in itertools.product(*choices))
    assert abs(sum(got) - target) == best
