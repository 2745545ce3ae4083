"""Offline accuracy metrics and `vbprune evaluate`."""

from __future__ import annotations

import json

import evaluate
import pytest
import torch

import vbprune
from testing_utils import manual_top1, run_vbprune
from vbprune.evaluation.accuracy import evaluate_model
from vbprune.evaluation.metrics import TopKAccuracy


def test_topk_accuracy_by_hand_and_combined():
    ranked = [[3, 1, 2], [0, 2, 1], [2, 0, 1], [1, 2, 0]]
    labels = [1, 0, 1, 0]
    both = evaluate.combine([TopKAccuracy(k=1), TopKAccuracy(k=2)])
    assert both.compute(predictions=ranked, references=labels) == {
        "top1_accuracy": 0.25, "top2_accuracy": 0.5}  # fmt: skip
    with pytest.raises(ValueError, match="needs 3 ranked classes"):
        TopKAccuracy(k=3).compute(predictions=[[1, 2]], references=[1])


def test_evaluate_model_loss_and_accuracy_by_hand():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 6)  # any classifier: logits = model(pixel_values)
    images = torch.randn(10, 4)
    labels = torch.randint(0, 6, (10,))
    batches = [{"pixel_values": images[:7], "labels": labels[:7]},
               {"pixel_values": images[7:], "labels": labels[7:]}]  # fmt: skip
    result = evaluate_model(model, batches)
    logits = model(images)
    assert result["samples"] == 10
    assert result["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-6
    )
    assert result["top1_accuracy"] == (logits.argmax(-1) == labels).sum().item() / 10
    top5 = (logits.topk(5).indices == labels[:, None]).any(-1).float().mean().item()
    assert result["top5_accuracy"] == pytest.approx(top5)


def test_cli_evaluate_writes_json_and_markdown(image_folder, prune_output, tmp_path):
    out = tmp_path / "eval"
    assert run_vbprune("evaluate", "--model", prune_output / "model", "--dataset",
                       image_folder, "--split", "val", "--num-workers", 0,
                       "--batch-size", 4, "--output", out) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    model = vbprune.from_pretrained(prune_output / "model")
    top1, count = manual_top1(model, image_folder / "val")
    assert report["samples"] == count == 9
    assert report["top1_accuracy"] == pytest.approx(top1)
    assert report["params"] == vbprune.count_params(model)
    assert report["macs"] == vbprune.count_macs(model, (3, 32, 32))
    assert report["latency"]["seconds"] > 0 and report["latency"]["batch_size"] == 4
    table = (out / "report.md").read_text()
    assert f"| top-1 | {100 * top1:.2f} % |" in table and "| latency |" in table


def test_latency_timing_is_bounded_and_optional_in_the_command():
    import time

    from vbprune.evaluation.latency import measure_latency

    class Slow(torch.nn.Module):
        def forward(self, x):
            time.sleep(0.05)
            return x

    start = time.perf_counter()
    seconds = measure_latency(Slow(), torch.zeros(1), repeats=1000, max_seconds=0.4)
    assert seconds >= 0.05 and time.perf_counter() - start < 2.0  # not 1000 x 50 ms


def test_quiet_turns_every_progress_bar_off(monkeypatch):
    import os

    from vbprune.cli import main

    for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("vbprune.commands.push.run", lambda args: 0)  # no work needed
    assert main(["push", "folder", "--repo-id", "me/x", "--quiet"]) == 0
    assert os.environ["TQDM_DISABLE"] == os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
