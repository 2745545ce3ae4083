"""Push pruned models to a Hub (a local Hub-compatible server) and load them by repo id."""

from __future__ import annotations

import json

import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download

import vbprune
from testing_utils import FAMILIES, logits, randomize, run_vbprune


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


def test_cli_push_of_a_prune_output(local_hub, prune_output, tmp_path):
    report = json.loads((prune_output / "report.json").read_text())
    assert run_vbprune("push", prune_output, "--repo-id", "tester/tiny-vbp") == 0
    files = set(HfApi().list_repo_files("tester/tiny-vbp"))
    assert {"config.json", "model.safetensors", "README.md", "report.json", "plan.json"} <= files
    assert "stats.safetensors" not in files
    card = ModelCard.load(hf_hub_download("tester/tiny-vbp", "README.md"))
    assert card.data.model_name == "tester/tiny-vbp"
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert abs(values["top-1 accuracy (original)"] - report["accuracy"]["top1_before"]) < 1e-6
    loaded = vbprune.from_pretrained("tester/tiny-vbp")
    assert vbprune.count_params(loaded) == report["params"]["after"]
    assert run_vbprune("push", tmp_path, "--repo-id", "tester/nothing") == 2


def test_prune_with_push_to_hub(local_hub, image_folder, timm_model_dir, tmp_path):
    out = tmp_path / "pruned"
    code = run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--ratio", 0.3, "--num-workers", 0, "--output", out,
                       "--push-to-hub", "tester/pushed")  # fmt: skip
    assert code == 0
    local = vbprune.from_pretrained(out / "model")
    remote = vbprune.from_pretrained("tester/pushed")
    assert all(torch.equal(a, b) for a, b in zip(local.state_dict().values(),
                                                 remote.state_dict().values()))  # fmt: skip
