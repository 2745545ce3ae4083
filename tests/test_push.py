"""Push pruned models to a Hub (a local Hub-compatible server) and load them by repo id."""

from __future__ import annotations

import json

import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download

import vbprune
from conftest import FAMILIES, logits, randomize
from vbprune.cli import main


def pruned(family, images):
    model = randomize(FAMILIES[family]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    vbprune.prune_model(model, stats, 0.4)
    return model


def test_push_then_load_by_repo_id(local_hub, images):
    for family, repo_id in (
        ("timm-convnextv2", "tester/convnext-v2-vbp"),
        ("hf-swin", "tester/swin-vbp"),
    ):
        model = pruned(family, images)
        vbprune.push_to_hub(model, repo_id, metadata={"base_model": "test", "ratio": 0.4})
        files = set(HfApi().list_repo_files(repo_id))
        assert {"config.json", "model.safetensors", "README.md"} <= files
        assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
        loaded = vbprune.from_pretrained(repo_id)
        assert (logits(model, images) - logits(loaded, images)).abs().max() < 1e-6
        card = ModelCard.load(hf_hub_download(repo_id, "README.md"))
        assert card.data.model_name == repo_id and repo_id in card.content


def test_transformers_model_by_repo_id_with_stock_auto_class(local_hub, images):
    from transformers import AutoModelForImageClassification

    model = pruned("hf-vit", images)
    vbprune.push_to_hub(model, "tester/vit-vbp")
    loaded = AutoModelForImageClassification.from_pretrained(
        "tester/vit-vbp", trust_remote_code=True
    )
    assert "modeling_vbprune.py" in HfApi().list_repo_files("tester/vit-vbp")
    assert (logits(model, images) - logits(loaded.eval(), images)).abs().max() < 1e-6


def test_cli_push_of_a_prune_output(local_hub, image_folder, timm_model_dir, tmp_path):
    out = tmp_path / "pruned"
    assert (
        main(
            [
                "prune",
                "--model",
                str(timm_model_dir),
                "--dataset",
                str(image_folder),
                "--ratio",
                "0.5",
                "--eval-split",
                "val",
                "--num-workers",
                "0",
                "--output",
                str(out),
                "--push-to-hub",
                "tester/tiny-vbp",
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    files = set(HfApi().list_repo_files("tester/tiny-vbp"))
    assert {"config.json", "model.safetensors", "README.md", "report.json", "plan.json"} <= files
    assert "stats.safetensors" not in files
    card = ModelCard.load(hf_hub_download("tester/tiny-vbp", "README.md"))
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert abs(values["top-1 accuracy (original)"] - report["accuracy"]["top1_before"]) < 1e-6
    loaded = vbprune.from_pretrained("tester/tiny-vbp")
    assert vbprune.count_params(loaded) == report["params"]["after"]

    assert main(["push", str(out), "--repo-id", "tester/tiny-vbp-copy"]) == 0
    copy = vbprune.from_pretrained("tester/tiny-vbp-copy")
    assert all(
        torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), copy.state_dict().values())
    )
    assert main(["push", str(tmp_path), "--repo-id", "tester/nothing"]) == 2
