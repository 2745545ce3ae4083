"""find_mlp_sites knows every supported family and names what it does not support."""

from __future__ import annotations

import pytest
import torch

import vbprune
from testing_utils import FAMILIES

FIRST_SITE = {
    "timm-vit": ("blocks.0.mlp", 2),
    "timm-deit-distilled": ("blocks.0.mlp", 2),
    "timm-swin": ("layers.0.blocks.0.mlp", 3),
    "timm-convnext": ("stages.0.blocks.0.mlp", 5),
    "timm-convnext-convmlp": ("stages.0.blocks.0.mlp", 5),
    "timm-convnextv2": ("stages.0.blocks.0.mlp", 5),
    "timm-convnextv2-convmlp": ("stages.0.blocks.0.mlp", 5),
    "hf-vit": ("vit.layers.0.mlp", 2),
    "hf-deit": ("deit.layers.0.mlp", 2),
    "hf-swin": ("swin.encoder.layers.0.blocks.0.mlp", 3),
    "hf-convnext": ("convnext.encoder.stages.0.layers.0", 3),
    "hf-convnextv2": ("convnextv2.encoder.stages.0.layers.0", 3),
}


def test_sites_of_every_family(family):
    model = FAMILIES[family]()
    sites = vbprune.find_mlp_sites(model)
    first, count = FIRST_SITE[family]
    assert sites[0].name == first and len(sites) == count
    modules = dict(model.named_modules())
    for site in sites:
        assert modules[site.name] is site.module
        assert site.fc1.weight.shape[0] == site.fc2.weight.shape[1] == site.width
        assert (site.grn is not None) == ("v2" in family)
        assert site.is_conv == ("convmlp" in family)


def test_base_model_without_head_is_supported():
    model = FAMILIES["hf-vit"]().vit  # a ViTModel
    assert [s.name for s in vbprune.find_mlp_sites(model)] == ["layers.0.mlp", "layers.1.mlp"]


def test_unsupported_model_names_class_and_supported_families():
    with pytest.raises(vbprune.UnsupportedModelError) as info:
        vbprune.find_mlp_sites(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    message = str(info.value)
    assert "Sequential" in message and "no module of a known MLP layout" in message
    # short, pointing to the list; the classes themselves are in SUPPORTED_FAMILIES
    assert "docs/supported_models.md" in message and len(message) < 300
    assert (
        "ConvNextV2Layer" in vbprune.SUPPORTED_FAMILIES and "SwiGLU" in vbprune.SUPPORTED_FAMILIES
    )
    assert isinstance(info.value, ValueError)


def test_models_without_an_mlp_are_unsupported():
    import timm
    from transformers import ResNetConfig, ResNetForImageClassification

    with pytest.raises(vbprune.UnsupportedModelError, match="cannot prune ResNet"):
        vbprune.find_mlp_sites(timm.create_model("resnet10t", pretrained=False))
    resnet = ResNetForImageClassification(
        ResNetConfig(embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=2)
    )
    with pytest.raises(vbprune.UnsupportedModelError, match="ResNetForImageClassification"):
        vbprune.find_mlp_sites(resnet)


def test_an_mlp_class_without_a_row_is_named_with_the_closest_rows():
    import timm
    from torch import nn

    class ConvMlpish(nn.Module):  # looks like an MLP, has no row
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(4, 8), nn.Linear(8, 4)

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                              patch_size=8, depth=1)  # fmt: skip
    model.blocks[0].extra = ConvMlpish()
    ConvMlpish.__module__ = "timm.models.fake"  # as if timm shipped it
    with pytest.raises(vbprune.UnsupportedModelError) as info:
        vbprune.find_mlp_sites(model)
    message = str(info.value)
    assert "blocks.0.extra is a timm ConvMlpish" in message and "closest rows: ConvMlp" in message


def test_gated_mlps_are_sites_with_one_neuron_per_gate_and_value_pair():
    import timm
    from timm.layers import SwiGLU, SwiGLUPacked

    for layer, layout in ((SwiGLU, "timm/SwiGLU"), (SwiGLUPacked, "timm/GluMlp")):
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32,
                                  patch_size=8, depth=1, mlp_layer=layer)  # fmt: skip
        site = vbprune.find_mlp_sites(model)[0]
        assert site.layout == layout and site.exact
        assert site.width == site.fc2.in_features
        if site.packed:
            assert site.gate is None and site.fc1.out_features == 2 * site.width
        else:
            assert site.gate.out_features == site.fc1.out_features == site.width


def test_unprunable_gating_says_why():
    from timm.layers import GatedMlp
    from timm.models.mlp_mixer import MlpMixer, SpatialGatingBlock

    model = MlpMixer(
        img_size=32,
        patch_size=8,
        num_blocks=1,
        embed_dim=16,
        mlp_ratio=6,
        block_layer=SpatialGatingBlock,
        mlp_layer=GatedMlp,
    )  # gMLP, small
    with pytest.raises(vbprune.UnsupportedModelError, match="GatedMlp.*gMLP"):
        vbprune.find_mlp_sites(model)
