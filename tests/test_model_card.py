"""Model cards of pruned models: parseable metadata with the measured numbers."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard

import vbprune


def test_prune_output_card_has_accuracy_sizes_and_loading(prune_output):
    out = prune_output
    report = json.loads((out / "report.json").read_text())
    card = ModelCard.load(out / "model" / "README.md")
    assert card.data.library_name == "timm"
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    accuracy = report["accuracy"]
    assert results["top-1 accuracy (original)"] == pytest.approx(accuracy["top1_before"])
    assert results["top-1 accuracy (right after pruning)"] == pytest.approx(
        accuracy["top1_after_pruning"]
    )
    assert all(r.dataset_split == "val" for r in card.data.eval_results)
    text = card.content
    assert f"{report['params']['before'] / 1e6:.2f} M" in text
    assert f"{report['params']['after'] / 1e6:.2f} M" in text
    assert "vbprune.from_pretrained" in text and "trust_remote_code" not in text
    assert "not measured" in text  # no speedup recorded: the card says so, invents none


def test_transformers_card_shows_both_ways_to_load_and_the_speedup(images, tmp_path):
    from testing_utils import FAMILIES, randomize

    model = randomize(FAMILIES["hf-deit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, 0.3)
    folder = vbprune.save_pretrained(
        model,
        tmp_path / "deit",
        metadata={
            "base_model": "hf:facebook/deit-tiny-distilled-patch16-224",
            "ratio": 0.3,
            "speedup": {"value": 1.21, "device": "NVIDIA H100, bf16, batch 64"},
        },
    )
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "transformers"
    assert card.data.base_model == "facebook/deit-tiny-distilled-patch16-224"
    assert "trust_remote_code=True" in card.content and "vbprune.from_pretrained" in card.content
    assert "**1.21x** (NVIDIA H100, bf16, batch 64)" in card.content
    assert not card.data.eval_results  # no accuracy known: none claimed


def test_card_says_when_means_were_not_folded(image_folder, timm_model_dir, tmp_path):
    from testing_utils import run_vbprune

    out = tmp_path / "ablation"
    assert run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--ratio", 0.3, "--no-compensate", "--num-workers", 0,
                       "--output", out) == 0  # fmt: skip
    text = (out / "model" / "README.md").read_text()
    assert "were NOT folded" in text and "are folded" not in text


def test_card_names_the_criterion_and_the_compensation():
    from vbprune.io.model_card import render_model_card

    def card(**pruning) -> str:
        section = {"base_model": "timm:deit_tiny_patch16_224", "widths": {"blocks.0.mlp": 3},
                   "pruning": {"ratio": 0.5, "scope": "global", **pruning},
                   "report": {"original_widths": {"blocks.0.mlp": 6}}}  # fmt: skip
        return " ".join(str(render_model_card(section, "timm", "me/model")).split())

    assert "removes the lowest-variance neurons (global ranking" in card()
    text = card(criterion="obs", compensate="ls")
    assert "vbprune's OBS criterion" in text and "lowest-variance" not in text
    assert "refitted by least squares" in text
    assert "neurons drawn at random" in card(criterion="random", compensate="mean")
    assert "smallest weight magnitude" in card(criterion="magnitude")


def test_card_shows_heads_per_attention_and_the_budget_only_when_pruned():
    from vbprune.io.model_card import render_model_card

    def card(pruning: dict, **report) -> str:
        report = {"original_widths": {"blocks.0.mlp": 6, "blocks.1.mlp": 6},
                  "macs": {"before": 2_000_000, "after": 590_000}, **report}  # fmt: skip
        section = {"base_model": "timm:deit_tiny_patch16_224",
                   "widths": {"blocks.0.mlp": 3, "blocks.1.mlp": 4},
                   "pruning": {"scope": "global", "criterion": "fluctuation", **pruning},
                   "report": report}  # fmt: skip
        if "heads" in report:
            section["heads"] = report["heads"]
        return " ".join(str(render_model_card(section, "timm", "model")).split())

    budget = {"measure": "macs", "asked": 0.3, "target": 0.3, "predicted": 0.295,
              "achieved": 0.295, "head_weight": 0.5, "kl": {"0.5": 0.01, "1": 0.02}}  # fmt: skip
    text = card({"target_macs": 0.3, "heads": True}, budget=budget,
                heads={"blocks.0.attn": 1, "blocks.1.attn": 3},
                original_heads={"blocks.0.attn": 3, "blocks.1.attn": 3})  # fmt: skip
    assert "# deit_tiny_patch16_224, 29.50 % of MACs kept, heads pruned (VBP)" in text
    assert "and 2 of its 6 attention heads removed" in text
    assert "(2 attentions, 6 -> 4 heads in total): blocks.0.attn: 1/3, blocks.1.attn: 3/3." in text
    assert "attention heads included, per MAC saved, down to 30 % of the MACs" in text
    assert "Budget: 30 % of the original MACs asked for, 29.50 % kept" in text
    assert "heads weighed 0.5 against neurons (chosen among several by the KL" in text
    assert "ratio None" not in text
    # a budget of parameters, MLP neurons only: no heads, the budget still shown
    budget = {**budget, "measure": "params", "asked": 0.6, "target": 0.6, "achieved": 0.58,
              "head_weight": None}  # fmt: skip
    del budget["kl"]
    text = card({"target_params": 0.6}, budget=budget)
    assert "per parameter saved, down to 60 % of the parameters" in text
    assert "Budget: 60 % of the original parameters asked for, 58.00 % kept" in text
    assert "attention" not in text and "heads weighed" not in text
    # an older report (a ratio; no heads, no budget) renders as it always did
    text = card({"ratio": 0.5})
    assert "(global ranking, ratio 0.5)." in text and "of MLP neurons removed (VBP)" in text
    assert "Budget" not in text and "attention" not in text


@pytest.mark.slow
@pytest.mark.parametrize("family", ["timm-swin", "hf-swin", "hf-vit"])
def test_every_loading_snippet_of_a_pushed_card_runs(images, tmp_path, local_hub, family):
    """The card's usage code is what works: each of its Python blocks, as pushed to a
    (local) Hub, runs in order and loads the pushed weights."""
    import re

    import torch

    from testing_utils import FAMILIES, logits, randomize

    model = FAMILIES[family]()
    if family.startswith("timm"):  # 3 classes: the cards' 10-class head is a new one
        model.reset_classifier(3)
    else:
        model.config.num_labels = 3
        model = type(model)(model.config)
    model = randomize(model)
    vbprune.prune_model(model, vbprune.VarianceCalibrator(model).run([images]), ratio=0.5)
    repo_id = f"tester/{family}-vbp50"
    vbprune.push_folder(vbprune.save_pretrained(model, tmp_path / "m"), repo_id)
    card = ModelCard.load(repo_id)
    blocks = re.findall(r"```python\n(.*?)```", card.content, flags=re.S)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, f"{repo_id}/README.md", "exec"), namespace)
    assert ("AutoBackbone" in card.content) == (family == "hf-swin")  # ViT has none
    assert ("num_labels=10" if family.startswith("hf") else "num_classes=10") in card.content
    # the pushed model, through each library and through vbprune (the last block)
    assert torch.equal(logits(namespace["model"].eval(), images), logits(model, images))
    finetune = namespace["finetune"].eval()
    assert logits(finetune, images).shape == (4, 10)
    state = model.state_dict()  # every weight but the new head's is the pushed one
    body = {k: v for k, v in finetune.state_dict().items()
            if k in state and not k.startswith(("head", "classifier"))}  # fmt: skip
    assert len(body) > 10 and all(torch.equal(v, state[k]) for k, v in body.items())
    if family == "hf-swin":
        assert namespace["backbone"].eval()(images).feature_maps
        assert namespace["trunk"].eval()(images).last_hidden_state.shape[0] == 4
    if family.startswith("timm"):
        assert namespace["features"].eval()(images)
        assert namespace["transform"] is not None
