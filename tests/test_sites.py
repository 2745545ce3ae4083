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
    assert "Sequential" in message and "SwinTransformer" in message and "convnextv2" in message
    assert isinstance(info.value, ValueError)


def test_unsupported_timm_and_hf_families():
    import timm
    from transformers import BeitConfig, BeitForImageClassification

    with pytest.raises(vbprune.UnsupportedModelError, match="ResNet"):
        vbprune.find_mlp_sites(timm.create_model("resnet10t", pretrained=False))
    beit = BeitForImageClassification(
        BeitConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
        )
    )
    with pytest.raises(vbprune.UnsupportedModelError, match="beit"):
        vbprune.find_mlp_sites(beit)


def test_gated_mlp_is_rejected():
    import timm
    from timm.layers import SwiGLU

    model = timm.create_model(
        "vit_tiny_patch16_224",
        pretrained=False,
        img_size=32,
        patch_size=8,
        depth=1,
        mlp_layer=SwiGLU,
    )
    with pytest.raises(vbprune.UnsupportedModelError, match="SwiGLU"):
        vbprune.find_mlp_sites(model)
