"""timm models as timm users build them (``timm.create_model(name, img_size=..., ...)``,
``local-dir:`` checkpoints, ``reset_classifier``, ``set_input_size``): MACs at the size
the model was built for, and ``save_pretrained`` without ``model_args`` that reloads
bit-exactly through vbprune and through timm."""

from __future__ import annotations

import json

import pytest
import torch

import vbprune
from testing_utils import randomize
from vbprune.architectures.interface import input_size


def reset_classifier(model):
    model.reset_classifier(7)


def set_input_size(model):
    model.set_input_size(img_size=(48, 48))


TINY_DEIT = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)

# name, create_model arguments, what is done to the model after creation, input size
CASES = [
    pytest.param(
        "deit_tiny_patch16_224", dict(img_size=32, patch_size=8, num_classes=3), None,
        (3, 32, 32), id="deit-img_size-patch_size-num_classes",
    ),
    pytest.param(
        "vit_tiny_patch16_224", dict(embed_dim=48, depth=3, num_heads=3, img_size=32), None,
        (3, 32, 32), id="vit-embed_dim-depth",
    ),
    pytest.param(
        "swin_tiny_patch4_window7_224",
        dict(img_size=64, window_size=4, embed_dim=24, depths=(1, 1), num_heads=(1, 2)), None,
        (3, 64, 64), id="swin-window_size",
    ),
    pytest.param(
        "convnext_atto", dict(num_classes=4, drop_path_rate=0.1), None,
        (3, 224, 224), id="convnext-drop_path_rate-no_img_size",
    ),
    pytest.param(
        "deit_tiny_patch16_224", TINY_DEIT, reset_classifier,
        (3, 32, 32), id="deit-reset_classifier",
    ),
    pytest.param(
        "deit_tiny_patch16_224", TINY_DEIT, set_input_size,
        (3, 48, 48), id="deit-set_input_size",
    ),
    pytest.param(
        "pvt_v2_b0", dict(depths=(1, 1, 1, 1), embed_dims=(8, 16, 40, 64), num_classes=5), None,
        (3, 224, 224), id="pvt_v2-no_img_size",
    ),
]  # fmt: skip


def build(name, args, then=None):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **args)
    if then is not None:
        then(model)
    return randomize(model).eval()  # heads and layer scales visibly non-zero


def assert_bit_exact(loaded, model, images):
    assert type(loaded) is type(model)
    expected, found = model.state_dict(), loaded.state_dict()
    assert found.keys() == expected.keys()
    for key, value in expected.items():
        assert found[key].dtype == value.dtype and torch.equal(found[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded.eval()(images), model.eval()(images))


def assert_macs_drop_after_pruning(model, images):
    before = vbprune.count_macs(model)
    assert before == vbprune.count_macs(model, input_size(model))
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, ratio=0.5)
    after = vbprune.count_macs(model)  # at the model's own size, not 224 px
    assert after == vbprune.count_macs(model, input_size(model))
    assert after < before


def assert_reloads_both_ways(model, folder, images):
    import timm

    assert_bit_exact(vbprune.from_pretrained(folder), model, images)
    assert_bit_exact(timm.create_model(f"local-dir:{folder}", pretrained=True), model, images)


@pytest.mark.parametrize("name, args, then, size", CASES)
def test_pruned_timm_model_counts_saves_and_reloads_without_model_args(
    name, args, then, size, tmp_path
):
    model = build(name, args, then)
    assert input_size(model) == size
    images = torch.randn(4, *size, generator=torch.Generator().manual_seed(1))
    assert_macs_drop_after_pruning(model, images)
    folder = vbprune.save_pretrained(model, tmp_path / "pruned")  # no model_args
    recorded = json.loads((folder / "config.json").read_text())["vbprune"]["model_args"]
    expected = json.loads(json.dumps({k: v for k, v in args.items() if k != "drop_path_rate"}))
    if "img_size" in expected:  # the current size (set_input_size changes it)
        expected["img_size"] = list(size[1:])
    expected["num_classes"] = model.num_classes  # reset_classifier changes it
    assert {k: recorded.get(k) for k in expected} == expected
    assert "drop_path_rate" not in recorded  # a training setting
    assert_reloads_both_ways(model, folder, images)


def test_model_loaded_from_a_plain_timm_folder_saves_without_model_args(tmp_path):
    import timm
    from timm.models import save_for_hf

    original = build("deit_tiny_patch16_224", dict(TINY_DEIT, num_classes=3))
    save_for_hf(original, str(tmp_path / "plain"), safe_serialization=True)
    model = timm.create_model(f"local-dir:{tmp_path / 'plain'}", pretrained=True).eval()
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert input_size(model) == (3, 32, 32)
    assert_bit_exact(model, original, images)
    assert_macs_drop_after_pruning(model, images)
    folder = vbprune.save_pretrained(model, tmp_path / "pruned")  # no model_args
    assert_reloads_both_ways(model, folder, images)


def test_unrecoverable_model_args_name_the_keyword_and_both_shapes(tmp_path):
    model = build("deit_tiny_patch16_224", TINY_DEIT)
    model.pos_embed = torch.nn.Parameter(torch.zeros(1, 5, 32))  # changed by hand
    with pytest.raises(vbprune.CheckpointError) as raised:
        vbprune.save_pretrained(model, tmp_path / "m")
    message = str(raised.value)
    assert "model_args=" in message
    assert "pos_embed: (1, 5, 32) here, (1, 17, 32) rebuilt" in message
    assert not (tmp_path / "m").exists()


def test_arguments_json_cannot_hold_are_named(tmp_path):
    args = dict(TINY_DEIT, act_layer=torch.nn.GELU)
    model = build("deit_tiny_patch16_224", args)
    with pytest.raises(vbprune.CheckpointError, match=r"act_layer=.*model_args="):
        vbprune.save_pretrained(model, tmp_path / "m")
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # a JSON value for it (timm's name of the same layer) saves
    folder = vbprune.save_pretrained(model, tmp_path / "m", model_args=dict(args, act_layer="gelu"))
    assert_reloads_both_ways(model, folder, images)


def test_transformers_models_count_at_their_config_size():
    from transformers import (
        TimmWrapperConfig,
        TimmWrapperForImageClassification,
        ViTConfig,
        ViTForImageClassification,
    )

    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=64)  # fmt: skip
    model = ViTForImageClassification(config)
    assert input_size(model) == (3, 32, 32)
    assert vbprune.count_macs(model) == vbprune.count_macs(model, (3, 32, 32))
    assert vbprune.count_macs(model, batch_size=2) == 2 * vbprune.count_macs(model)
    # a timm model inside transformers' TimmWrapper: the timm model's own size
    config = TimmWrapperConfig(architecture="deit_tiny_patch16_224", model_args=TINY_DEIT,
                               num_labels=3)  # fmt: skip
    wrapped = TimmWrapperForImageClassification(config)
    assert input_size(wrapped) == (3, 32, 32)
    assert vbprune.count_macs(wrapped) == vbprune.count_macs(wrapped.timm_model, (3, 32, 32))
