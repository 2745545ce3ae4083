"""`vbprune sweep`: a readable plot and a table whose rows are the ratios asked for."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

import vbprune
from testing_utils import FAMILIES, randomize, run_vbprune
from vbprune.evaluation.sweep import budget_sweep, plot, sweep, table


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


def test_budget_rows_keep_the_macs_asked_and_heads_reach_what_mlps_cannot(images, tmp_path):
    model = randomize(FAMILIES["timm-vit"]())
    stats = vbprune.VarianceCalibrator(model, covariance=True, heads=True).run([images])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dense = vbprune.count_macs(model, (3, 32, 32))
    rows = sweep(model, stats, [0.5], lambda m: vbprune.count_params(m) / 1e5, (3, 32, 32),
                 criteria=("variance",), folds=("mean",), target_macs=[0.7, 0.4], heads=True,
                 images=images)  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # untouched
    budget = rows[2:]
    assert [(r["target_macs"], r["heads"]) for r in budget] == [
        (0.7, False), (0.7, True), (0.4, False), (0.4, True)]  # fmt: skip
    assert all(r["ratio"] is None and r["fold"] == "ls" for r in budget)
    assert {r["criterion"] for r in budget} == {vbprune.PruningConfig(0.5, heads=True,
                                                compensate="ls").criterion}  # fmt: skip
    reached = [r for r in budget if r["accuracy"] is not None]
    for row in reached:  # every reached budget is kept, as counted
        assert row["macs"] == pytest.approx(row["macs_share"] * dense)
        assert row["macs_share"] <= row["target_macs"] + 1e-9
    # MLP neurons alone cannot bring this ViT to 40 % of its MACs; with heads it gets there
    mlp_only, with_heads = budget[2], budget[3]
    assert mlp_only["accuracy"] is None and "out of reach" in mlp_only["error"]
    assert with_heads["heads_kept"] < with_heads["heads_total"] == 4
    assert budget[0]["heads_kept"] is None  # MLP only: no heads pruned
    text = table(rows)
    assert "| 40 % | out of reach | " in text and f"| {with_heads['heads_kept']}/4 |" in text
    assert text.count("| 0.5 |") == 1  # the ratio table keeps its one row
    assert budget_sweep(model, stats, [0.4], lambda m: 0.0, (3, 32, 32), heads=False)[0][
        "accuracy"] is None  # fmt: skip
    with pytest.raises(vbprune.ConfigError, match="target_macs must be in"):
        budget_sweep(model, stats, [1.5], lambda m: 0.0, (3, 32, 32))
    pytest.importorskip("matplotlib")
    plot(rows, tmp_path / "sweep.png")  # a third panel: accuracy against the MACs kept
    plot(rows[:2], tmp_path / "ratios.png")
    with Image.open(tmp_path / "sweep.png") as wide, Image.open(tmp_path / "ratios.png") as two:
        assert wide.size[0] > 1.3 * two.size[0]


def test_magnitude_scores_by_hand():
    model = FAMILIES["hf-vit"]()
    site = vbprune.find_mlp_sites(model)[0]
    scores = vbprune.magnitude_scores(model)[site.name]
    j = 5
    expected = site.fc1.weight[j].norm() * site.fc2.weight[:, j].norm()
    assert torch.isclose(scores[j], expected.detach().double())


@pytest.fixture(scope="module")
def digits_cache(tmp_path_factory):
    """One cache of the trained digits ViT for this module's CLI sweeps (trained once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
def test_cli_sweep_writes_a_png_and_a_table(tmp_path, monkeypatch, digits_cache):
    monkeypatch.setenv("VBPRUNE_CACHE", str(digits_cache))
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


@pytest.mark.slow
def test_cli_sweep_heads_curve_against_the_macs_kept(tmp_path, monkeypatch, digits_cache):
    monkeypatch.setenv("VBPRUNE_CACHE", str(digits_cache))
    out = tmp_path / "sweep"
    options = ("--ratios", 0.5, "--criteria", "variance", "--compensations", "mean", "--heads",
               "--target-macs", 0.5, 0.3)  # fmt: skip
    assert run_vbprune("sweep", *options, "--output", out) == 0
    data = json.loads((out / "sweep.json").read_text())
    budget = {(r["target_macs"], r["heads"]): r for r in data if r["ratio"] is None}
    assert {r["fold"] for r in budget.values()} == {"ls"}  # --budget-compensate's default
    assert set(budget) == {(0.5, False), (0.5, True), (0.3, False), (0.3, True)}
    for row in budget.values():
        assert row["accuracy"] is None or row["macs_share"] <= row["target_macs"] + 1e-9
    # the digits ViT's MLPs alone cannot go down to 30 % of its MACs; with heads it can
    assert budget[0.3, False]["accuracy"] is None
    heads = budget[0.3, True]
    # far above chance (10 %) right after pruning, without fine-tuning
    assert heads["accuracy"] > 0.5 and heads["heads_kept"] < heads["heads_total"] == 16
    text = (out / "sweep.md").read_text()
    assert "| MACs asked | MLP neurons only | heads + MLP neurons | heads kept |" in text
    assert "| 30 % | out of reach |" in text
    with Image.open(out / "sweep.png") as png:
        assert png.size[0] > 1500  # three panels
