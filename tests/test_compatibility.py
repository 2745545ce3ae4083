"""Pruned models keep working the way their library's users expect (issue 15's list):
features, bf16, sdpa == eager, gradient checkpointing, TorchScript, torch.compile,
transformers pipelines. Each runs on a small pruned model of each library."""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, logits, randomize
from vbprune.architectures.interface import logits_of


def pruned(family: str, images, heads: bool = False):
    """A pruned model as its library's users have it: a transformers one saved and loaded
    back through stock transformers (the checkpoint's remote-code classes). With ``heads``
    attention heads go too (a low head weight: some surely do)."""
    torch.manual_seed(0)
    model = randomize(FAMILIES[family]())
    stats = vbprune.VarianceCalibrator(model, heads=heads).run([images])
    config = (vbprune.PruningConfig(target_macs=0.6, heads=True, head_weight=0.05) if heads
              else vbprune.PruningConfig(ratio=0.5))  # fmt: skip
    result = vbprune.prune_model(model, stats, config=config)
    assert not heads or sum(result.heads.values()) < sum(result.original_heads.values())
    if family.startswith("hf"):
        from transformers import AutoModelForImageClassification

        with tempfile.TemporaryDirectory() as folder:
            vbprune.save_pretrained(model, Path(folder) / "m")
            model = AutoModelForImageClassification.from_pretrained(
                Path(folder) / "m", trust_remote_code=True)  # fmt: skip
        assert type(model).__module__.endswith("modeling_vbprune")
    return model.eval()


class Logits(torch.nn.Module):
    """A transformers classifier as a tensor-in, tensor-out module, as exporters take it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(pixel_values))


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
    """Checkpointing is on (each block's fc1 runs again in the backward pass) and gives
    the gradients of plain training."""
    model = pruned(family, images)
    gradients, calls = [], []
    for checkpointing in (False, True):
        trained = copy.deepcopy(model).train()
        if checkpointing and family.startswith("timm"):
            trained.set_grad_checkpointing(True)
        elif checkpointing:
            trained.gradient_checkpointing_enable()
        fc1 = vbprune.find_mlp_sites(trained)[0].fc1
        runs: list[int] = []
        fc1.register_forward_hook(lambda *_, runs=runs: runs.append(1))
        logits_of(trained(images)).square().mean().backward()  # with gradients
        calls.append(len(runs))
        gradients.append({n: p.grad.clone() for n, p in trained.named_parameters()
                          if p.grad is not None})  # fmt: skip
    assert calls == [1, 2]  # recomputed in the backward pass: checkpointing took effect
    assert gradients[0].keys() == gradients[1].keys() and gradients[0]
    for name, grad in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("heads", [False, True])
@pytest.mark.parametrize("family", ["timm-vit", "hf-vit"])
def test_torchscript_and_torch_compile_of_a_pruned_model(images, family, heads):
    model = Logits(pruned(family, images, heads)).eval()
    expected = logits(model, images)
    with torch.no_grad():
        traced = torch.jit.trace(model, images, strict=False)  # strict: transformers' dicts
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


@pytest.mark.slow
@pytest.mark.parametrize(
    "family",
    ["timm-vit", "timm-swin", "timm-convnext", "hf-vit", "hf-swin", "hf-convnextv2",
     "timm-vit+heads", "hf-vit+heads"],
)  # fmt: skip
def test_onnx_export_of_a_pruned_model_runs_in_onnxruntime(images, tmp_path, family):
    """torch.onnx.export (dynamo, with a dynamic batch) then onnxruntime gives PyTorch's
    logits on another batch size. transformers' Swin goes through the TorchScript exporter:
    stock SwinForImageClassification fails the dynamo exporter in transformers 5.24 too."""
    import onnxruntime  # a dev dependency: if it is missing the test fails, not skips

    family, heads = family.removesuffix("+heads"), family.endswith("+heads")
    model = Logits(pruned(family, images, heads)).eval()
    path = tmp_path / f"{family}.onnx"
    with torch.no_grad():
        if family == "hf-swin":
            torch.onnx.export(model, (images,), path, dynamo=False, input_names=["pixel_values"],
                              dynamic_axes={"pixel_values": {0: "batch"}})  # fmt: skip
        else:
            torch.onnx.export(model, (images,), path, dynamo=True, input_names=["pixel_values"],
                              dynamic_shapes={"pixel_values": {0: "batch"}})  # fmt: skip
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = images[:3]  # not the traced batch size
    (out,) = session.run(None, {"pixel_values": batch.numpy()})
    expected = logits(model, batch)
    torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
@pytest.mark.parametrize("family", ["timm-vit", "hf-convnextv2"])
def test_torch_compile_inductor_of_a_pruned_model(images, family):
    """torch.compile's default backend (inductor, which builds C++ kernels on CPU)."""
    model = pruned(family, images)
    expected = logits(model, images)
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(logits_of(compiled(images)), expected, rtol=1e-5, atol=1e-5)


STOCK_TRAINER = r"""
import json, sys, torch
sys.modules["vbprune"] = None  # stock transformers only
from transformers import AutoModelForImageClassification, Trainer, TrainingArguments
folder, out = sys.argv[1], sys.argv[2]
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)
before = {k: v.clone() for k, v in model.state_dict().items()}
generator = torch.Generator().manual_seed(0)
data = [{"pixel_values": torch.randn(3, 32, 32, generator=generator), "labels": i % 3}
        for i in range(8)]
args = TrainingArguments(out, max_steps=2, per_device_train_batch_size=4, use_cpu=True,
                         report_to=[], save_strategy="no", learning_rate=1e-2)
trainer = Trainer(model=model, args=args, train_dataset=data)
trainer.train()
trainer.save_model(out + "/final")
again = AutoModelForImageClassification.from_pretrained(out + "/final", trust_remote_code=True)
x = torch.randn(2, 3, 32, 32, generator=generator)
with torch.no_grad():
    difference = (again.eval()(x).logits - model.eval()(x).logits).abs().max().item()
moved = sum(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
print(json.dumps({"difference": difference, "moved": moved,
                  "widths": again.config.mlp_widths}))
"""


@pytest.mark.slow
def test_stock_trainer_fine_tunes_saves_and_reloads_a_pruned_checkpoint(images, tmp_path):
    """transformers' own Trainer, in a process where vbprune cannot be imported: it trains
    the pruned model, save_model writes the remote code with it, and the saved folder
    loads back at the pruned widths with the trained weights."""
    import json
    import subprocess
    import sys

    model = pruned("hf-vit", images)
    folder = vbprune.save_pretrained(model, tmp_path / "m")
    done = subprocess.run([sys.executable, "-c", STOCK_TRAINER, str(folder), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["moved"] > 10  # it trained
    assert result["difference"] == 0.0  # and saved exactly what it trained
    assert result["widths"] == {s.name: s.width for s in vbprune.find_mlp_sites(model)}
