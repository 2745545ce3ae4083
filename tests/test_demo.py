"""`vbprune demo`: the README's main command, end to end on the digits ViT."""

from __future__ import annotations

import json

import pytest

import vbprune
from testing_utils import run_vbprune


@pytest.mark.slow
def test_demo_runs_and_variance_beats_random_selection(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VBPRUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    assert run_vbprune("demo", "--output", out, "--num-samples", 256, "--epochs", 1) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "model", "report.json", "stats.safetensors", "summary.md"]  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    accuracy = report["accuracy"]
    print(accuracy)
    assert accuracy["top1_before"] > 0.8  # a real trained network
    assert accuracy["top1_after_pruning"] >= accuracy["top1_random_selection"]
    # least squares side by side with VBP's mean fold, at the same size
    assert accuracy["top1_least_squares"] >= accuracy["top1_mean_fold"]
    assert accuracy["top1_after_pruning"] == accuracy["top1_mean_fold"]  # VBP is saved
    assert report["params"]["after"] < report["params"]["before"]
    model = vbprune.from_pretrained(out / "model")
    assert vbprune.count_params(model) == report["params"]["after"]
    printed = capsys.readouterr().out
    assert "| random selection, mean fold |" in printed
    assert "| variance, least squares |" in printed
    # where no compensation beats the mean fold, the demo says so and why
    beaten = accuracy["top1_without_fold"] > accuracy["top1_mean_fold"]
    assert ("no compensation at all beats VBP's mean fold" in " ".join(printed.split())) == beaten
    # the trained network is cached: a second run does not train it again
    assert (tmp_path / "cache" / "digits-vit" / "model.safetensors").is_file()
    assert run_vbprune("demo", "--output", out) == 2  # not empty: refused
