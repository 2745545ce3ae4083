"""`vbprune demo`: the README's main command, end to end on the digits ViT."""

from __future__ import annotations

import json

import pytest

import vbprune
from testing_utils import run_vbprune


@pytest.mark.slow
def test_demo_runs_and_variance_beats_random_selection(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("VBPRUNE_CACHE", str(tmp_path / "cache"))
    for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS",
                 "HF_HUB_DISABLE_PROGRESS_BARS"):  # fmt: skip
        monkeypatch.setenv(name, "")  # --quiet sets them: restored after the test
    out = tmp_path / "demo"
    assert run_vbprune("demo", "--output", out, "--num-samples", 256, "--epochs", 1,
                       "--quiet") == 0  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "model", "report.json", "stats.safetensors", "summary.md"]  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    accuracy = report["accuracy"]
    top1 = {(v["criterion"], v["compensate"]): v for v in accuracy["variants"] if "heads" not in v}
    # every registered criterion and compensation has a row
    assert {c for c, _ in top1} == set(vbprune.CRITERIA)
    assert {m for c, m in top1 if c == "variance"} == set(vbprune.COMPENSATIONS)
    vbp = top1["variance", "mean"]
    assert accuracy["top1_before"] > 0.8  # a real trained network
    assert vbp["top1_after_pruning"] >= top1["random", "mean"]["top1_after_pruning"]
    # least squares side by side with VBP's mean fold, at the same size
    assert top1["variance", "ls"]["top1_after_pruning"] >= vbp["top1_after_pruning"]
    assert accuracy["top1_after_pruning"] == vbp["top1_after_pruning"]  # VBP is saved
    assert accuracy["top1_after_distillation"] == vbp["top1_after_distillation"]
    # the best row right after pruning is distilled too
    best = max(accuracy["variants"], key=lambda v: v["top1_after_pruning"])
    assert "top1_after_distillation" in best
    assert report["params"]["after"] < report["params"]["before"]
    # heads pruned with the MLP neurons (least squares), to the MACs of the saved model
    (heads,) = [v for v in accuracy["variants"] if v.get("heads")]
    assert heads["compensate"] == "ls" and heads["heads_total"] == 16
    assert heads["macs"] <= heads["target_macs"] * report["macs"]["before"]
    assert heads["target_macs"] == round(report["macs"]["after"] / report["macs"]["before"], 4)
    assert heads["top1_after_pruning"] >= top1["random", "mean"]["top1_after_pruning"]
    model = vbprune.from_pretrained(out / "model")
    assert vbprune.count_params(model) == report["params"]["after"]
    # every number on the card is real: the widths before and after, summed
    card = " ".join((out / "model" / "README.md").read_text().split())
    widths = vbprune.architectures.mlp_widths(model)
    total = sum(report["original_widths"].values())
    assert f"(4 MLPs, {total} -> {sum(widths.values())} neurons in total)" in card
    assert f'vbprune.from_pretrained("{out / "model"}")' in card  # loaded from where it is
    captured = capsys.readouterr()
    printed = captured.out
    # --quiet keeps the results; no Trainer log dictionaries, no warnings to explain
    assert "| original |" in printed and f"wrote {out}" in printed
    assert "{'" not in printed and "Pretrained mean" not in captured.err + caplog.text
    assert "UserWarning" not in captured.err
    assert "| random, mean fold |" in printed
    assert "| variance, least squares |" in printed
    assert "| variance, mean fold (VBP) |" in printed
    assert f"least squares (same MACs; {heads['heads_kept']} of 16 heads kept) |" in printed
    # where no compensation beats the mean fold, the demo says so and why
    beaten = top1["variance", "none"]["top1_after_pruning"] > vbp["top1_after_pruning"]
    assert ("no compensation at all beats VBP's mean fold" in " ".join(printed.split())) == beaten
    # the trained network is cached: a second run does not train it again
    assert (tmp_path / "cache" / "digits-vit" / "model.safetensors").is_file()
    assert run_vbprune("demo", "--output", out) == 2  # not empty: refused
