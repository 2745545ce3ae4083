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
