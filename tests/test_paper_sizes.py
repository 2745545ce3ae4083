"""The paper's DeiT sizes after global pruning (method.md section 6), from pretrained=False.

All DeiT MLPs have the same width, so the sizes do not depend on the weights or data.
Parameters match the paper to 0.01 M. MAC reductions match to 0.15 points: the paper's
own percentages are not all consistent with one counter (its DeiT-B -34.93 % is ours to
the digit; DeiT-T reads -25.16 % where removing floor(0.45 * 9216) neurons gives -25.02 %).
"""

from __future__ import annotations

import copy

import pytest
import torch

import vbprune
from vbprune import ActivationStats, NeuronStats

PAPER = [
    # model, ratio, params before (M), params after (M), MAC reduction (%)
    ("deit_tiny_patch16_224", 0.45, 5.72, 4.12, 25.16),
    ("deit_small_patch16_224", 0.50, 22.05, 14.96, 30.37),
    ("deit_base_patch16_224", 0.55, 86.57, 55.40, 34.93),
    ("deit_base_patch16_224", 0.20, 86.57, None, 12.68),
]


def random_stats(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    stats = {}
    for site in vbprune.find_mlp_sites(model):
        width = site.width
        stats[site.name] = NeuronStats(
            1000,
            torch.randn(width, generator=g, dtype=torch.float64),
            torch.rand(width, generator=g, dtype=torch.float64),
        )
    return ActivationStats(stats)


@pytest.fixture(scope="module")
def dense():
    import timm

    return {
        name: timm.create_model(name, pretrained=False).eval() for name in {row[0] for row in PAPER}
    }


@pytest.mark.parametrize("name, ratio, params_before, params_after, mac_drop", PAPER)
def test_deit_sizes(dense, name, ratio, params_before, params_after, mac_drop):
    model = copy.deepcopy(dense[name])
    params0, macs0 = vbprune.count_params(model), vbprune.count_macs(model)
    result = vbprune.prune_model(model, random_stats(model), ratio)
    assert result.num_pruned == int(ratio * sum(result.original_widths.values()))
    params1, macs1 = vbprune.count_params(model), vbprune.count_macs(model)
    assert round(params0 / 1e6, 2) == params_before
    if params_after is not None:
        assert round(params1 / 1e6, 2) == params_after
    assert abs(100 * (1 - macs1 / macs0) - mac_drop) < 0.15
    if name == "deit_base_patch16_224":
        assert 17.56e9 <= macs0 <= 17.58e9
        if ratio == 0.55:
            # Paper: 17.58 -> 11.44 G; ours 17.56 -> 11.43 G (the removed 6.14 G agree).
            assert abs((macs0 - macs1) / 1e9 - 6.14) < 0.005
            assert abs(100 * (1 - params1 / params0) - 36.01) < 0.02
        else:
            assert abs(100 * (1 - params1 / params0) - 13.09) < 0.01
