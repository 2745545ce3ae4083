"""`vbprune sweep`: a readable plot and a table whose rows are the ratios asked for."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import vbprune
from testing_utils import FAMILIES, randomize, run_vbprune
from vbprune.evaluation.sweep import sweep, table


def test_sweep_rows_follow_the_ratios_and_size_shrinks(images):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model).run([images])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rows = sweep(model, stats, [0.2, 0.6], lambda m: 0.5, (3, 32, 32),
                 criteria=("variance", "magnitude"), folds=(True,))  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    assert [(r["ratio"], r["criterion"]) for r in rows] == [
        (0.0, "original"), (0.2, "variance"), (0.2, "magnitude"),
        (0.6, "variance"), (0.6, "magnitude")]  # fmt: skip
    assert rows[3]["macs"] < rows[1]["macs"] < rows[0]["macs"]
    assert rows[1]["params"] == rows[2]["params"]  # same count removed, other neurons
    lines = [line for line in table(rows).splitlines() if line.startswith("| 0.")]
    assert [line.split(" | ")[0] for line in lines] == ["| 0.2", "| 0.6"]


def test_magnitude_scores_by_hand():
    model = FAMILIES["hf-vit"]()
    site = vbprune.find_mlp_sites(model)[0]
    scores = vbprune.magnitude_scores(model)[site.name]
    j = 5
    expected = site.fc1.weight[j].norm() * site.fc2.weight[:, j].norm()
    assert torch.isclose(scores[j], expected.detach().double())


@pytest.mark.slow
def test_cli_sweep_writes_a_png_and_a_table(tmp_path, monkeypatch):
    monkeypatch.setenv("VBPRUNE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    assert run_vbprune("sweep", "--ratios", 0.3, 0.8, "--output", out) == 0
    with Image.open(out / "sweep.png") as png:
        png.verify()  # a complete, readable PNG
    with Image.open(out / "sweep.png") as png:
        assert png.format == "PNG" and png.size[0] > 400 and png.size[1] > 200
    rows = [line for line in (out / "sweep.md").read_text().splitlines() if line[:4] == "| 0."]
    assert [line.split(" | ")[0] for line in rows] == ["| 0.3", "| 0.8"]
    data = json.loads((out / "sweep.json").read_text())
    assert {r["criterion"] for r in data} == {"original", *vbprune.CRITERIA}  # all of them
    # original + ratios x every registered criterion x every registered compensation
    assert len(data) == 1 + 2 * len(vbprune.CRITERIA) * len(vbprune.COMPENSATIONS)
    at_08 = {(r["criterion"], r["fold"]): r["accuracy"] for r in data if r["ratio"] == 0.8}
    assert at_08["variance", "ls"] >= at_08["variance", "mean"]  # least squares keeps more
    assert at_08["obs", "ls"] >= at_08["variance", "ls"]  # and keeps more chosen for it
