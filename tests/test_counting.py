"""count_macs counts every matmul/conv MAC, attention products included; count_params."""

from __future__ import annotations

import pytest

import vbprune
from testing_utils import FAMILIES, hf_vit, randomize, vit_macs


def test_timm_vit_macs_equal_hand_count_before_and_after_pruning(images):
    model = randomize(FAMILIES["timm-vit"]())  # 32 px, patch 8: 16 patches + cls token
    assert vbprune.count_macs(model, (3, 32, 32)) == vit_macs(17, 32, [128, 128], 16, 192, 10)
    stats = vbprune.VarianceCalibrator(model).run([images])
    result = vbprune.prune_model(model, stats, 0.3)
    hidden = list(result.widths.values())
    assert vbprune.count_macs(model, (3, 32, 32)) == vit_macs(17, 32, hidden, 16, 192, 10)
    assert vbprune.count_macs(model, (2, 3, 32, 32)) == 2 * vit_macs(17, 32, hidden, 16, 192, 10)


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_hf_vit_attention_counted_with_any_implementation(implementation):
    model = hf_vit(attn_implementation=implementation)
    assert vbprune.count_macs(model, (3, 32, 32)) == vit_macs(17, 32, [64, 64], 16, 192, 10)


def test_params_drop_by_removed_rows_and_columns(images):
    model = randomize(FAMILIES["hf-swin"]())
    before = vbprune.count_params(model)
    stats = vbprune.VarianceCalibrator(model).run([images])
    result = vbprune.prune_model(model, stats, 0.4)
    expected = before
    for site in vbprune.find_mlp_sites(model):
        removed = result.original_widths[site.name] - site.width
        expected -= removed * (site.fc1.in_features + 1 + site.fc2.out_features)
    assert vbprune.count_params(model) == expected


def test_count_macs_restores_training_mode_and_checks_shape():
    model = FAMILIES["timm-convnext"]().train()
    assert vbprune.count_macs(model, (3, 32, 32)) > 0
    assert model.training
    with pytest.raises(ValueError, match="input_size"):
        vbprune.count_macs(model, (32, 32))


def test_count_macs_of_a_model_that_passes_a_parameter_into_a_submodule():
    import torch

    class Head(torch.nn.Module):  # PiT/CaiT hand their class token to a block like this
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 3)

        def forward(self, x, token):
            return self.proj(x.mean((2, 3))[:, :4] + token)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.token = torch.nn.Parameter(torch.ones(4))
            self.head = Head()

        def forward(self, x):
            return self.head(x, self.token)

    model = Model()
    assert vbprune.count_macs(model, (4, 8, 8)) == 4 * 3
    assert all(p.requires_grad for p in model.parameters())  # frozen only meanwhile


def test_count_macs_without_input_size_uses_the_models_own():
    import torch

    model = FAMILIES["timm-vit"]()  # built at 32 px: 224 px would not even run
    assert vbprune.count_macs(model) == vbprune.count_macs(model, (3, 32, 32))
    assert vbprune.count_macs(model, batch_size=3) == 3 * vbprune.count_macs(model)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))  # neither timm nor transformers
    with pytest.raises(vbprune.ConfigError, match="pass input_size"):
        vbprune.count_macs(plain)
