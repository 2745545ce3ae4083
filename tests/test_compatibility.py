"""Pruned models keep working the way their library's users expect (issue 15's list):
features, bf16, sdpa == eager, gradient checkpointing, TorchScript, torch.compile,
transformers pipelines. Each runs on a small pruned model of each library."""

from __future__ import annotations

import copy

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize
from vbprune.architectures.interface import logits_of


def pruned(family: str, images):
    torch.manual_seed(0)
    model = randomize(FAMILIES[family]())
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), ratio=0.5)
    return model.eval()


def test_timm_forward_intermediates_of_a_pruned_model(images):
    model, dense = pruned("timm-vit", images), FAMILIES["timm-vit"]()
    final, intermediates = model.forward_intermediates(images)
    _, expected = dense.forward_intermediates(images)
    assert [t.shape for t in intermediates] == [t.shape for t in expected]
    assert torch.allclose(model.forward_head(final), logits(model, images), atol=1e-5)


@pytest.mark.parametrize("family", ["timm-vit", "hf-vit"])
def test_bfloat16_pruned_model_follows_float32(images, family):
    model = pruned(family, images)
    reference = logits(model, images)
    half = copy.deepcopy(model).to(torch.bfloat16)
    out = logits(half, images.to(torch.bfloat16)).float()
    assert (out - reference).abs().max() <= 0.05 * reference.abs().max()


def test_transformers_sdpa_equals_eager_on_a_pruned_model(images, tmp_path):
    folder = vbprune.save_pretrained(pruned("hf-vit", images), tmp_path / "m")
    from transformers import AutoModelForImageClassification

    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = AutoModelForImageClassification.from_pretrained(
            folder, trust_remote_code=True, attn_implementation=implementation
        )
        outputs[implementation] = logits(model.eval(), images)
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["timm-vit", "hf-vit"])
def test_gradient_checkpointing_gives_the_same_gradients(images, family):
    model = pruned(family, images)
    gradients = []
    for checkpointing in (False, True):
        trained = copy.deepcopy(model).train()
        if checkpointing and family.startswith("timm"):
            trained.set_grad_checkpointing(True)
        elif checkpointing:
            trained.gradient_checkpointing_enable()
        logits_of(trained(images)).square().mean().backward()  # with gradients
        gradients.append({n: p.grad.clone() for n, p in trained.named_parameters()
                          if p.grad is not None})  # fmt: skip
    assert gradients[0].keys() == gradients[1].keys() and gradients[0]
    for name, grad in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_torchscript_and_torch_compile_of_a_pruned_timm_model(images):
    model = pruned("timm-vit", images)
    expected = logits(model, images)
    with torch.no_grad():
        traced = torch.jit.trace(model, images)
        torch.testing.assert_close(traced(images), expected, rtol=1e-5, atol=1e-5)
        compiled = torch.compile(model, backend="aot_eager")  # graph capture, no C++ build
        torch.testing.assert_close(compiled(images), expected, rtol=1e-5, atol=1e-5)


def test_transformers_pipeline_runs_a_pruned_checkpoint(images, tmp_path):
    from PIL import Image
    from transformers import pipeline

    model = pruned("hf-vit", images)
    folder = vbprune.save_pretrained(model, tmp_path / "m")
    from transformers import ViTImageProcessor

    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    classify = pipeline("image-classification", model=str(folder), trust_remote_code=True)
    answer = classify(Image.new("RGB", (40, 40), "red"), top_k=3)
    assert len(answer) == 3 and all({"label", "score"} <= set(a) for a in answer)
    assert sum(a["score"] for a in answer) <= 1.0 + 1e-6
