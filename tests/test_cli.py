"""`vbprune calibrate` / `vbprune prune` end to end on a generated image folder."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import vbprune
from testing_utils import TINY_TIMM_ARGS, manual_top1, run_vbprune, vit_macs

TOKENS, DIM = 17, TINY_TIMM_ARGS["embed_dim"]


def test_prune_writes_model_stats_plan_and_a_correct_report(image_folder, timm_model_dir, tmp_path):
    out = tmp_path / "pruned"
    code = run_vbprune(
        "prune",
        "--model",
        timm_model_dir,
        "--dataset",
        image_folder,
        "--ratio",
        0.4,
        "--eval-split",
        "val",
        "--batch-size",
        4,
        "--num-workers",
        0,
        "--output",
        out,
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "model",
        "plan.json",
        "report.json",
        "stats.safetensors",
    ]
    report = json.loads((out / "report.json").read_text())

    from vbprune.io.model_specs import load_model

    dense = load_model(str(timm_model_dir))
    weights = load_file(out / "model" / "model.safetensors")
    assert report["params"]["before"] == sum(p.numel() for p in dense.parameters())
    assert report["params"]["after"] == sum(t.numel() for t in weights.values())
    widths = {f"blocks.{i}.mlp": weights[f"blocks.{i}.mlp.fc1.weight"].shape[0] for i in (0, 1)}
    assert report["widths"] == widths
    assert report["original_widths"] == {"blocks.0.mlp": 128, "blocks.1.mlp": 128}
    assert report["num_pruned"] == int(0.4 * 256) == 256 - sum(widths.values())
    assert report["macs"]["before"] == vit_macs(TOKENS, DIM, [128, 128], 16, 192, 3)
    assert report["macs"]["after"] == vit_macs(TOKENS, DIM, widths.values(), 16, 192, 3)
    assert report["calibration"]["samples_first_mlp"] == 21 * TOKENS
    assert report["pruning"] == vbprune.PruningConfig(ratio=0.4).to_dict()
    top1, count = manual_top1(dense, image_folder / "val")
    assert report["accuracy"]["samples"] == count == 9
    assert report["accuracy"]["top1_before"] == pytest.approx(top1)
    assert top1 > 0.5  # the fixture model was trained: the check is not vacuous
    plan = vbprune.PruningPlan.from_dict(json.loads((out / "plan.json").read_text()))
    vbprune.apply_plan(dense, plan)  # the same pruned model, rebuilt from the plan
    assert all(torch.equal(dense.state_dict()[k], v) for k, v in weights.items())
    top1_after, _ = manual_top1(dense, image_folder / "val")
    assert report["accuracy"]["top1_after_pruning"] == pytest.approx(top1_after)
    assert set(report["timings"]) >= {"calibration_s", "prune_s", "eval_before_s", "eval_after_s"}
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["vbprune"]["widths"] == widths
    assert json.loads((out / "plan.json").read_text())["config"]["ratio"] == 0.4


def test_calibrate_then_prune_from_the_statistics(image_folder, timm_model_dir, tmp_path):
    stats_path = tmp_path / "stats.safetensors"
    assert (
        run_vbprune(
            "calibrate",
            "--model",
            timm_model_dir,
            "--dataset",
            image_folder,
            "--num-samples",
            10,
            "--num-workers",
            0,
            "--output",
            stats_path,
        )
        == 0
    )
    stats = vbprune.ActivationStats.load(stats_path)
    assert stats["blocks.0.mlp"].count == 10 * TOKENS
    out = tmp_path / "pruned"
    assert (
        run_vbprune(
            "prune",
            "--model",
            timm_model_dir,
            "--stats",
            stats_path,
            "--ratio",
            0.5,
            "--scope",
            "layer",
            "--round-to",
            8,
            "--output",
            out,
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert report["widths"] == {"blocks.0.mlp": 64, "blocks.1.mlp": 64}


def test_bad_input_leaves_no_output_folder(image_folder, timm_model_dir, tmp_path, capsys):
    out = tmp_path / "pruned"
    base = ["prune", "--model", timm_model_dir, "--num-workers", 0, "--output", out]
    assert run_vbprune(*base, "--dataset", image_folder, "--ratio", 1.5) == 2
    assert "ratio must be in [0, 1), got 1.5" in capsys.readouterr().err
    assert run_vbprune(*base, "--dataset", tmp_path / "missing", "--ratio", 0.5) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert (
        run_vbprune(*base, "--dataset", image_folder, "--image-column", "img", "--ratio", 0.5) == 2
    )
    assert "no image column 'img'" in capsys.readouterr().err
    # statistics of another model (other site names and widths)
    other = vbprune.ActivationStats(
        {
            "layers.0.blocks.0.mlp": vbprune.NeuronStats(
                5, torch.zeros(64, dtype=torch.float64), torch.ones(64, dtype=torch.float64)
            )
        }
    )
    other.save(tmp_path / "other.safetensors")
    assert run_vbprune(*base, "--stats", tmp_path / "other.safetensors", "--ratio", 0.5) == 2
    assert "no entry for 2 MLP site(s)" in capsys.readouterr().err
    assert (
        run_vbprune(
            "prune", "--model", "timm-deit", "--stats", "x", "--ratio", 0.5, "--output", out
        )
        == 2
    )
    assert "expected timm:NAME" in capsys.readouterr().err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]  # no temp


def test_non_empty_output_is_refused_unless_overwrite(image_folder, timm_model_dir, tmp_path):
    out = tmp_path / "pruned"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [
        "prune",
        "--model",
        timm_model_dir,
        "--dataset",
        image_folder,
        "--ratio",
        0.3,
        "--num-workers",
        0,
        "--output",
        out,
    ]
    assert run_vbprune(*args) == 2
    assert (out / "keep.txt").read_text() == "mine"
    assert run_vbprune(*args, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "report.json").exists()


def test_prune_a_transformers_model_folder(image_folder, tmp_path):
    from testing_utils import hf_convnextv2, randomize

    torch.manual_seed(0)
    model = randomize(hf_convnextv2())
    model.save_pretrained(tmp_path / "hf-model")
    out = tmp_path / "pruned"
    with pytest.warns(UserWarning, match="no image processor"):
        code = run_vbprune(
            "prune",
            "--model",
            tmp_path / "hf-model",
            "--dataset",
            image_folder,
            "--ratio",
            0.25,
            "--num-workers",
            0,
            "--output",
            out,
        )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["model_type"] == "convnextv2"  # the stock type: loads like any model
    assert config["auto_map"]["AutoModelForImageClassification"].startswith("modeling_vbprune.")
    assert config["vbprune"]["widths"] == report["widths"]
    assert config["mlp_widths"] == report["widths"]
    assert report["num_pruned"] == int(0.25 * (32 + 64 + 64))
    weights = load_file(out / "model" / "model.safetensors")
    assert report["params"]["after"] == sum(t.numel() for t in weights.values())


def test_least_squares_from_the_command_line(image_folder, timm_model_dir, tmp_path, capsys):
    plain, full = tmp_path / "plain.safetensors", tmp_path / "full.safetensors"
    common = ("--model", timm_model_dir, "--dataset", image_folder, "--num-samples", 6,
              "--num-workers", 0)  # fmt: skip
    assert run_vbprune("calibrate", *common, "--output", plain) == 0
    assert run_vbprune("calibrate", *common, "--covariance", "--output", full) == 0
    assert vbprune.ActivationStats.load(plain)["blocks.0.mlp"].c2 is None
    cov = vbprune.ActivationStats.load(full)["blocks.0.mlp"].cov
    assert cov.shape == (128, 128)
    # statistics without covariance: one line naming the fix, nothing written
    code = run_vbprune("prune", "--model", timm_model_dir, "--stats", plain, "--ratio", 0.5,
                       "--compensate", "ls", "--output", tmp_path / "refused")  # fmt: skip
    assert code == 2 and "vbprune calibrate --covariance" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    for mode, stats in (("ls", full), ("none", plain)):
        out = tmp_path / mode
        assert run_vbprune("prune", "--model", timm_model_dir, "--stats", stats, "--ratio",
                           0.5, "--compensate", mode, "--output", out) == 0  # fmt: skip
        report = json.loads((out / "report.json").read_text())
        assert report["pruning"]["compensate"] == mode
        # with covariance the report says how much of each fc2's output is lost
        assert ("lost_variance" in report) == (stats == full)
    # prune calibrating on --dataset collects the covariance itself for ls
    args = ("prune", *common, "--ratio", 0.5, "--compensate", "ls", "--output", tmp_path / "self")
    assert run_vbprune(*args) == 0
    assert json.loads((tmp_path / "self" / "report.json").read_text())["calibration"]["covariance"]


def test_obs_criterion_and_covariance_fraction_from_the_command_line(
    image_folder, timm_model_dir, tmp_path, capsys
):
    common = ("--model", timm_model_dir, "--dataset", image_folder, "--num-samples", 6,
              "--num-workers", 0)  # fmt: skip
    plain = tmp_path / "plain.safetensors"
    assert run_vbprune("calibrate", *common, "--output", plain) == 0
    code = run_vbprune("prune", "--model", timm_model_dir, "--stats", plain, "--ratio", 0.5,
                       "--criterion", "obs", "--output", tmp_path / "refused")  # fmt: skip
    assert code == 2 and "--criterion obs needs the covariance" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    # prune calibrating itself collects the covariance for obs, on a quarter of the tokens
    out = tmp_path / "obs"
    assert run_vbprune("prune", *common, "--ratio", 0.5, "--criterion", "obs",
                       "--compensate", "ls", "--covariance-fraction", 0.25,
                       "--output", out) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["pruning"]["criterion"] == "obs" and report["pruning"]["compensate"] == "ls"
    assert report["calibration"]["covariance_fraction"] == 0.25
    stats = vbprune.ActivationStats.load(out / "stats.safetensors")
    entry = stats["blocks.0.mlp"]
    assert torch.equal(entry.cov.diagonal(), entry.var)
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        run_vbprune("calibrate", *common, "--covariance-fraction", 0, "--output", plain)
    assert exit_info.value.code == 2 and "--covariance-fraction" in capsys.readouterr().err


def test_unreadable_images_are_named_or_skipped_and_counted(
    image_folder, timm_model_dir, prune_output, tmp_path, capsys
):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(image_folder, folder)
    broken = sorted((folder / "train" / "dog").iterdir())[0]
    broken.write_bytes(broken.read_bytes()[:100])  # truncated
    (folder / "val" / "cat" / "junk.png").write_bytes(b"not an image")
    common = ("--model", timm_model_dir, "--dataset", folder, "--num-workers", 0)
    stats = tmp_path / "stats.safetensors"
    assert run_vbprune("calibrate", *common, "--output", stats) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(broken) in err and "#" in err
    assert "--skip-bad-images" in err and not stats.exists()
    assert run_vbprune("calibrate", *common, "--output", stats, "--skip-bad-images") == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unreadable image(s)" in printed and "calibrated on 20 images" in printed
    out = tmp_path / "eval"
    assert run_vbprune("evaluate", *common, "--split", "val", "--skip-bad-images",
                       "--latency-repeats", 1, "--output", out) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["skipped_images"]["count"] == 1 and report["samples"] == 9
    kd = tmp_path / "kd"
    assert run_vbprune("distill", "--model", prune_output, "--dataset", folder, "--eval-split",
                       "val", "--epochs", 1, "--batch-size", 8, "--num-workers", 0,
                       "--skip-bad-images", "--output", kd) == 0  # fmt: skip
    skipped = json.loads((kd / "report.json").read_text())["distillation"]["skipped_images"]
    assert skipped["count"] == 2 and str(broken) in skipped["first"]


def test_outputs_are_named_titled_and_permitted_as_users_expect(
    prune_output, image_folder, tmp_path, monkeypatch, capsys
):
    import os
    import stat

    from vbprune.commands.arguments import default_workers
    from vbprune.commands.evaluate import default_output

    # folders get the usual permissions (tempfile.mkdtemp alone would give 0700)
    mode = stat.S_IMODE((prune_output / "model").stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask
    # the card is titled with the base model, not the folder name "model"
    card = (prune_output / "model" / "README.md").read_text()
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert title.startswith("# tiny-vit, 50") and "of MLP neurons removed (VBP)" in title
    # evaluations of different models do not share a default folder; latency is optional
    assert default_output("timm:deit_small_patch16_224", "validation") == (
        "evaluation-deit_small_patch16_224-validation")  # fmt: skip
    assert default_output(str(prune_output / "model"), "val") == "evaluation-pruned-val"
    monkeypatch.chdir(tmp_path)
    assert run_vbprune("evaluate", "--model", prune_output, "--dataset", image_folder,
                       "--split", "val", "--latency-repeats", 0) == 0  # fmt: skip
    report = json.loads((tmp_path / "evaluation-pruned-val" / "report.json").read_text())
    assert report["latency"] is None and report["samples"] == 9
    assert 0 <= default_workers() <= min(4, os.cpu_count())
