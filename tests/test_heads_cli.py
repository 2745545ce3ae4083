"""`vbprune calibrate --heads` / `vbprune prune --heads --target-macs ...` end to end."""

from __future__ import annotations

import json

import pytest

import vbprune
from testing_utils import run_vbprune


@pytest.fixture(scope="module")
def head_stats(tmp_path_factory, image_folder, timm_model_dir):
    """Statistics of the trained tiny ViT with its attention sites (`calibrate --heads`)."""
    path = tmp_path_factory.mktemp("heads") / "stats.safetensors"
    assert run_vbprune("calibrate", "--model", timm_model_dir, "--dataset", image_folder,
                       "--heads", "--num-workers", 0, "--output", path) == 0  # fmt: skip
    return path


def test_prune_heads_to_a_mac_budget_writes_a_model_within_it(
    image_folder, timm_model_dir, tmp_path, capsys
):
    out = tmp_path / "heads"
    assert run_vbprune("prune", "--model", timm_model_dir, "--dataset", image_folder,
                       "--heads", "--target-macs", 0.5, "--num-workers", 0,
                       "--output", out) == 0  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    model = vbprune.from_pretrained(out / "model")  # the written model, reloaded
    macs = vbprune.count_macs(model)
    assert macs == report["macs"]["after"] <= 0.5 * report["macs"]["before"]
    assert vbprune.count_params(model) == report["params"]["after"]
    # heads were really removed (MLP neurons alone cannot reach 0.5 of this model's MACs)
    assert report["original_heads"] == {"blocks.0.attn": 2, "blocks.1.attn": 2}
    assert report["heads"] == vbprune.attention_heads(model)
    removed = sum(report["original_heads"].values()) - sum(report["heads"].values())
    assert removed >= 1
    assert report["widths"] == vbprune.architectures.mlp_widths(model)
    budget = report["budget"]
    assert budget["measure"] == "macs" and budget["asked"] == 0.5
    assert budget["achieved"] == pytest.approx(macs / report["macs"]["before"], abs=1e-6)
    # with --dataset the weight of heads was chosen by KL on calibration images
    assert budget["head_weight"] in (0.25, 0.5, 1.0, 2.0, 4.0) and budget["kl"]
    assert report["calibration"]["head_weight_images"] == 21  # all 21 training images
    assert report["calibration"]["attention_sites"] == 2
    pruning = report["pruning"]
    assert pruning["target_macs"] == 0.5 and pruning["heads"] is True
    assert pruning["criterion"] == vbprune.PruningConfig(target_macs=0.5).criterion
    assert "ratio" not in pruning
    assert f"and {removed} of 4 attention heads" in printed
    assert f"budget: 0.5 of the dense model's MACs asked, {budget['achieved']:.4g} kept" in printed
    card = (out / "model" / "README.md").read_text()
    kept = ", ".join(f"{name}: {n}/2" for name, n in report["heads"].items())
    assert kept in " ".join(card.split())
    assert "50 % of the original MACs asked for" in card


def test_budget_and_head_options_are_refused_in_one_line(
    image_folder, timm_model_dir, tmp_path, capsys, calibration_refused
):
    out = tmp_path / "refused"
    base = ("prune", "--model", timm_model_dir, "--dataset", image_folder, "--num-workers", 0,
            "--output", out)  # fmt: skip
    refusals = [
        (("--ratio", 0.3, "--target-macs", 0.5),
         "give exactly one of --ratio, --target-macs, --target-params, --target-speedup, "
         "--target-latency (got --ratio and "
         "--target-macs)"),
        (("--target-macs", 0.5, "--target-params", 0.5), "(got --target-macs and --target-params)"),
        ((), "give exactly one of --ratio, --target-macs, --target-params, --target-speedup"),
        (("--target-macs", 1.5), "--target-macs must be in (0, 1], got 1.5"),
        (("--target-params", 0), "--target-params must be in (0, 1], got 0"),
        (("--ratio", 0.5, "--head-weight", 2), "--head-weight weighs heads against neurons"),
        (("--heads", "--target-macs", 0.5, "--head-weight", -1), "--head-weight must be positive"),
        # out of reach, said before calibrating: MLP neurons alone, and even with heads
        (("--target-macs", 0.4), "target_macs=0.4 is out of reach"),
        (("--target-macs", 0.05, "--heads"), "target_macs=0.05 is out of reach"),
    ]  # fmt: skip
    for options, message in refusals:
        assert run_vbprune(*base, *options) == 2, options
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (options, err)
    assert not out.exists()


def test_stats_without_heads_are_refused_before_pruning(
    image_folder, timm_model_dir, tmp_path, capsys, monkeypatch
):
    plain = tmp_path / "plain.safetensors"
    assert run_vbprune("calibrate", "--model", timm_model_dir, "--dataset", image_folder,
                       "--num-samples", 4, "--num-workers", 0, "--output", plain) == 0  # fmt: skip
    capsys.readouterr()

    def no_pruning(*args, **kwargs):
        raise AssertionError("pruned before the statistics were checked")

    monkeypatch.setattr(vbprune.pruning, "prune_model", no_pruning)
    out = tmp_path / "refused"
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats", plain, "--heads",
                       "--target-macs", 0.5, "--output", out) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "blocks.0.attn" in err and "vbprune calibrate --heads" in err
    assert not out.exists()


def test_head_statistics_from_calibrate_prune_with_the_default_weight(
    head_stats, timm_model_dir, tmp_path, capsys
):
    stats = vbprune.ActivationStats.load(head_stats)
    # the attention output projection's input: num_heads * head_dim channels
    assert stats["blocks.0.attn"].mean.shape == (32,)
    assert stats["blocks.0.mlp"].mean.shape == (128,)
    out = tmp_path / "params"
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats", head_stats, "--heads",
                       "--target-params", 0.6, "--output", out) == 0  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    model = vbprune.from_pretrained(out / "model")
    params = vbprune.count_params(model)
    assert params == report["params"]["after"] <= 0.6 * report["params"]["before"]
    budget = report["budget"]
    assert budget["measure"] == "params" and budget["asked"] == 0.6
    # no --dataset, no images: the default weight, not chosen by KL
    assert budget["head_weight"] == 1.0 and "kl" not in budget
    assert "the default: no --dataset images" in printed
    assert report["heads"] == vbprune.attention_heads(model)
    # a ratio with heads: the MACs that ratio of MLP neurons removes, from both; the weight
    # as given
    mixed = tmp_path / "mixed"
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats", head_stats, "--heads",
                       "--ratio", 0.3, "--head-weight", 2, "--output", mixed) == 0  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads((mixed / "report.json").read_text())
    budget = report["budget"]
    assert budget["asked"] is None and budget["head_weight"] == 2.0 and "kl" not in budget
    assert budget["achieved"] <= budget["target"] + 1e-6 < 1
    assert report["pruning"]["head_weight"] == 2.0 and report["pruning"]["ratio"] == 0.3
    assert "(what ratio 0.3 removes)" in printed and "(--head-weight)" in printed
    # the same statistics prune MLP neurons only, by a ratio, as before (no heads keys)
    ratio = tmp_path / "ratio"
    assert run_vbprune("prune", "--model", timm_model_dir, "--stats", head_stats, "--ratio", 0.5,
                       "--output", ratio) == 0  # fmt: skip
    report = json.loads((ratio / "report.json").read_text())
    assert not {"heads", "original_heads", "budget"} & set(report)
    assert report["pruning"] == vbprune.PruningConfig(ratio=0.5).to_dict()
    assert report["pruning"]["criterion"] == "variance"
    assert "attention heads" not in (ratio / "model" / "README.md").read_text()


def test_prune_help_names_the_budgets_and_the_criterion_defaults(capsys):
    with pytest.raises(SystemExit):
        run_vbprune("prune", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--target-macs F", "--target-params F", "--heads", "--head-weight W"):
        assert option in text
    # --criterion has no default of its own: the config's, which its help names
    assert "default: variance for a ratio of MLP neurons" in text
    assert "with --stats and no --dataset" in text  # --head-weight: when no KL choice
    from vbprune.cli import build_parser

    args = build_parser().parse_args(["prune", "--model", "m", "--ratio", "0.5", "--output", "o"])
    assert args.criterion is None and args.target_macs is None and args.heads is False
