"""`vbprune sweep --model M --dataset D`: every point equals a separate prune + evaluate,
a killed sweep resumes, and the four outputs are written (issue 23, item 1)."""

from __future__ import annotations

import json

import pytest

from testing_utils import run_vbprune

STABLE = ("criterion", "compensate", "heads", "target_macs", "ratio", "top1", "top5", "loss",
          "kl", "macs", "params", "samples")  # fmt: skip


def sweep_args(image_folder, timm_model_dir, out):
    return ["sweep", "--model", timm_model_dir, "--dataset", image_folder, "--eval-split",
            "val", "--num-workers", 0, "--targets", 0.8, 0.6, "--compensate", "mean", "ls",
            "--latency-batch", 2, "--output", out]  # fmt: skip


def stable(rows):
    return [{k: row.get(k) for k in STABLE} for row in rows]


def test_model_sweep_points_equal_separate_prune_runs_and_it_resumes(
    image_folder, timm_model_dir, tmp_path, monkeypatch
):
    out = tmp_path / "sweep"
    assert run_vbprune(*sweep_args(image_folder, timm_model_dir, out)) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "sweep.csv", "sweep.json", "sweep.md", "sweep.png"]  # fmt: skip
    assert not (tmp_path / "sweep.partial").exists()
    report = json.loads((out / "sweep.json").read_text())
    rows = report["rows"]
    assert len(rows) == 4 and all(row["macs"] <= 0.8 * report["dense"]["macs"] for row in rows)
    assert all(r["speedup"] == pytest.approx(r["dense_ms"] / r["pruned_ms"]) for r in rows)
    assert any(r["pareto"] for r in rows)

    # one point, pruned and evaluated on its own by `vbprune prune`: the same numbers
    row = next(r for r in rows if r["compensate"] == "ls" and r["target_macs"] == 0.6)
    single = tmp_path / "single"
    assert run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--target-macs", 0.6, "--compensate", "ls", "--eval-split", "val",
                       "--num-workers", 0, "--output", single) == 0  # fmt: skip
    alone = json.loads((single / "report.json").read_text())
    assert alone["accuracy"]["top1_after_pruning"] == row["top1"]
    assert alone["macs"]["after"] == row["macs"] and alone["params"]["after"] == row["params"]

    # killed after two points: the rerun redoes none of them and gives the same table
    from vbprune import pruning

    calls = {"n": 0}
    real = pruning.prune_model

    def dies_after_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    again = tmp_path / "again"
    monkeypatch.setattr(pruning, "prune_model", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_vbprune(*sweep_args(image_folder, timm_model_dir, again))
    finished = (tmp_path / "again.partial" / "points.jsonl").read_text().splitlines()
    assert len(finished) == 2 and not again.exists()
    calls["n"] = -10  # the rerun must prune only the two points left
    assert run_vbprune(*sweep_args(image_folder, timm_model_dir, again)) == 0
    assert calls["n"] == -8
    resumed = json.loads((again / "sweep.json").read_text())["rows"]
    assert stable(resumed) == stable(rows)
