"""`vbprune distill` end to end on the tiny trained model and image folder."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard

import vbprune
from testing_utils import run_vbprune


def distill(prune_output, image_folder, out, *extra):
    return run_vbprune("distill", "--model", prune_output, "--dataset", image_folder,
                       "--eval-split", "val", "--epochs", 2, "--batch-size", 8,
                       "--learning-rate", 1e-3, "--num-workers", 0, "--output", out,
                       *extra)  # fmt: skip


def test_distill_keeps_best_and_last_reports_and_resumes(prune_output, image_folder, tmp_path):
    out = tmp_path / "kd"
    assert distill(prune_output, image_folder, out) == 0
    report = json.loads((out / "report.json").read_text())
    history = report["distillation"]
    assert len(history["eval_top1_per_epoch"]) == 2
    assert history["eval_samples_per_epoch"] == [9, 9]
    assert report["accuracy"]["top1_after_distillation"] == max(history["eval_top1_per_epoch"])
    assert history["teacher"]  # the base model recorded at pruning time
    assert history["augment"] is True  # training images augmented by default
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["checkpoint-3", "checkpoint-6"]  # best and last (limit 2)
    model = vbprune.from_pretrained(out / "model")
    pruned_widths = json.loads((prune_output / "report.json").read_text())["widths"]
    assert {s.name: s.width for s in vbprune.find_mlp_sites(model)} == pruned_widths
    card = ModelCard.load(out / "model" / "README.md")
    names = {r.metric_name for r in card.data.eval_results}
    assert "top-1 accuracy (after distillation)" in names

    # resume from the last checkpoint: one more epoch
    assert distill(prune_output, image_folder, out, "--resume", "last", "--epochs", 3) == 0
    again = json.loads((out / "report.json").read_text())
    assert len(again["distillation"]["eval_top1_per_epoch"]) == 3


def test_resume_from_another_models_checkpoint_is_refused(prune_output, image_folder,
                                                          tmp_path, capsys):  # fmt: skip
    out = tmp_path / "kd"
    assert distill(prune_output, image_folder, out, "--epochs", 1) == 0
    checkpoint = out / "checkpoints" / "checkpoint-3"
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    key = next(k for k in weights if k.endswith("mlp.fc1.weight"))
    weights[key] = weights[key][:-1]  # another width
    save_file(weights, other / "model.safetensors")
    assert distill(prune_output, image_folder, out, "--resume", other) == 2
    assert "of another model" in capsys.readouterr().err


def test_distill_needs_labels_and_a_matching_teacher(prune_output, image_folder, tmp_path,
                                                     capsys):  # fmt: skip
    import timm
    from timm.models import save_for_hf

    from testing_utils import TINY_TIMM_ARGS

    assert distill(prune_output, image_folder, tmp_path / "a", "--label-column", "tag") == 2
    assert "no label column 'tag'" in capsys.readouterr().err
    args = {**TINY_TIMM_ARGS, "num_classes": 5}
    other = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    save_for_hf(other, str(tmp_path / "teacher5"), model_args=args, safe_serialization=True)
    assert distill(prune_output, image_folder, tmp_path / "b", "--teacher",
                   tmp_path / "teacher5") == 2  # fmt: skip
    assert "teacher has 5 classes, the student 3" in capsys.readouterr().err
    assert not (tmp_path / "b" / "model").exists()


def test_transformers_model_distils_resumes_and_saves_its_best_epoch(image_folder, tmp_path):
    from safetensors.torch import load_file
    from transformers import ViTConfig, ViTForImageClassification

    from testing_utils import TINY_HF_VIT_ARGS

    torch.manual_seed(0)
    dense = tmp_path / "dense"
    config = ViTConfig(**{**TINY_HF_VIT_ARGS, "num_labels": 3})
    ViTForImageClassification(config).save_pretrained(dense)
    pruned = tmp_path / "pruned"
    assert run_vbprune("prune", "--model", dense, "--dataset", image_folder, "--ratio", 0.5,
                       "--num-workers", 0, "--output", pruned) == 0  # fmt: skip
    out = tmp_path / "kd"
    assert distill(pruned, image_folder, out, "--epochs", 1) == 0
    # resuming a transformers model continues the run (it was refused as "another model")
    assert distill(pruned, image_folder, out, "--resume", "last", "--epochs", 2) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["distillation"]["eval_top1_per_epoch"]) == 2
    best = max(range(2), key=lambda i: report["distillation"]["eval_top1_per_epoch"][i])
    # the saved model is the best checkpoint, every tensor of it (by value: names differ)
    saved = load_file(out / "model" / "model.safetensors")
    checkpoint = load_file(
        out / "checkpoints" / f"checkpoint-{3 * (best + 1)}" / "model.safetensors"
    )
    assert saved.keys() == checkpoint.keys()
    assert all(torch.equal(saved[k], checkpoint[k]) for k in saved)


def test_overwrite_starts_a_new_run_and_resume_skips_incomplete_checkpoints(
    prune_output, image_folder, tmp_path, capsys
):
    from vbprune.training.checkpoints import is_complete

    out = tmp_path / "kd"
    assert distill(prune_output, image_folder, out) == 0  # checkpoints 3 and 6
    code = distill(prune_output, image_folder, out)
    assert code == 2 and "--resume last to continue" in capsys.readouterr().err
    # --overwrite: the old run's checkpoints go, a later resume cannot pick them up
    assert distill(prune_output, image_folder, out, "--overwrite", "--epochs", 1) == 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-3"]
    # a run killed while saving checkpoint-6, and while saving the model
    shutil.copytree(out / "checkpoints" / "checkpoint-3", out / "checkpoints" / "checkpoint-6")
    (out / "checkpoints" / "checkpoint-6" / "trainer_state.json").write_text('{"glob')
    (out / ".model.x1y2.tmp").mkdir()
    code = distill(
        prune_output, image_folder, out, "--resume", out / "checkpoints" / "checkpoint-6"
    )
    assert code == 2 and "checkpoint-6 is incomplete" in capsys.readouterr().err
    assert distill(prune_output, image_folder, out, "--resume", "last", "--epochs", 2) == 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["distillation"]["eval_top1_per_epoch"]) == 2  # resumed after epoch 1
    assert is_complete(out / "checkpoints" / "checkpoint-6")  # saved again, whole
    assert not (out / ".model.x1y2.tmp").exists()


def test_failed_run_leaves_nothing_that_blocks_a_rerun(prune_output, image_folder, tmp_path):
    out = tmp_path / "kd"
    # fails inside the Trainer (after it made its output folder): no such label column
    assert distill(prune_output, image_folder, out, "--label-column", "tag") == 2
    assert not out.exists()
    assert distill(prune_output, image_folder, out, "--epochs", 1) == 0


def test_random_base_model_is_rebuilt_as_the_same_teacher(image_folder, tmp_path):
    """--no-pretrained: seeded, recorded, and distil rebuilds it rather than downloading."""
    common = ("--model", "timm:vit_tiny_patch16_224", "--no-pretrained", "--dataset",
              image_folder, "--num-samples", 4, "--num-workers", 0)  # fmt: skip
    stats = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for path in stats:  # two runs, the same random model: the same statistics
        assert run_vbprune("calibrate", *common, "--output", path) == 0
    first, second = (vbprune.ActivationStats.load(p) for p in stats)
    assert all(torch.equal(first[n].m2, second[n].m2) for n in first)
    pruned = tmp_path / "pruned"
    assert run_vbprune("prune", *common, "--ratio", 0.5, "--output", pruned) == 0
    section = json.loads((pruned / "model" / "config.json").read_text())["vbprune"]
    assert section["base_model"] == "timm:vit_tiny_patch16_224"
    assert section["base_model_seed"] == 0
    # HF_HUB_OFFLINE: a download of the pretrained teacher would fail here
    out = tmp_path / "kd"
    assert distill(pruned, image_folder, out, "--epochs", 1, "--num-samples", 6,
                   "--eval-samples", 3) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["distillation"]["teacher_seed"] == 0


def test_local_base_model_is_recorded_so_it_reloads_from_anywhere(
    image_folder, timm_model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(timm_model_dir.parent)
    out = tmp_path / "pruned"
    assert run_vbprune("prune", "--model", timm_model_dir.name, "--dataset", image_folder,
                       "--ratio", 0.5, "--num-workers", 0, "--output", out) == 0  # fmt: skip
    section = json.loads((out / "model" / "config.json").read_text())["vbprune"]
    assert section["base_model"] == str(timm_model_dir.resolve())
    monkeypatch.chdir(tmp_path)  # elsewhere: the teacher still loads
    assert distill(out, image_folder, tmp_path / "kd", "--epochs", 1) == 0


def test_report_says_which_dataset_each_top1_is_on(prune_output, image_folder, tmp_path):
    out = tmp_path / "kd"
    # prune measured top-1 on val; distil evaluates on train: not the same numbers
    assert distill(prune_output, image_folder, out, "--epochs", 1, "--eval-split", "train") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["split"] == "train"
    assert "top1_after_pruning" not in report["accuracy"]  # measured on val
    assert report["accuracy_at_pruning"]["split"] == "val"
    assert report["distillation"]["eval_split"] == "train"


def test_every_training_argument_reaches_the_trainer(prune_output, image_folder, tmp_path,
                                                     capsys):  # fmt: skip
    """The Trainer's own fields pass through (parsed by transformers' HfArgumentParser)
    and win over vbprune's options that set the same field; output is one line per
    evaluation, never the Trainer's raw log dictionaries."""
    out = tmp_path / "kd"
    assert distill(prune_output, image_folder, out, "--max_steps", 4, "--eval_strategy",
                   "steps", "--eval_steps", 2, "--save_strategy", "steps", "--save_steps", 2,
                   "--lr_scheduler_type", "linear", "--warmup_steps", 1,
                   "--learning_rate", 5e-4) == 0  # fmt: skip
    state = json.loads((out / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["eval_steps"] == 2
    args = torch.load(out / "checkpoints" / "checkpoint-4" / "training_args.bin",
                      weights_only=False)  # fmt: skip
    assert args.lr_scheduler_type == "linear" and args.warmup_steps == 1
    assert args.learning_rate == 5e-4  # the Trainer's spelling wins over --learning-rate
    assert args.alpha == 0.5 and args.metric_for_best_model == "top1"  # vbprune's, kept
    report = json.loads((out / "report.json").read_text())
    assert report["distillation"]["max_steps"] == 4
    assert report["distillation"]["learning_rate"] == 5e-4
    assert len(report["distillation"]["eval_top1_per_epoch"]) == 2  # at steps 2 and 4
    printed = capsys.readouterr().out
    assert "{'" not in printed  # no raw dictionaries of the Trainer's logs
    # one line per evaluation during training (at steps 2 and 4)
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert len(lines) == 2 and all("top-1" in line for line in lines), printed
    assert "top-1 on val:" in printed


def test_unknown_and_reserved_training_options_are_one_line_errors(
    prune_output, image_folder, tmp_path, capsys
):
    out = tmp_path / "kd"
    assert distill(prune_output, image_folder, out, "--no_such_field", 3) == 2
    error = capsys.readouterr().err
    assert "unknown option(s) --no_such_field 3" in error and "--help-training" in error
    assert distill(prune_output, image_folder, out, "--output_dir", tmp_path / "x") == 2
    assert "use --output" in capsys.readouterr().err
    # the Trainer's own check: the best epoch is kept, so evaluation must match saving
    assert distill(prune_output, image_folder, out, "--eval_strategy", "no") == 2
    error = capsys.readouterr().err
    assert error.startswith("vbprune distill: error: training arguments:") and error[-1] == "\n"
    assert error.count("\n") == 1
    assert not out.exists()  # refused before anything was written
    with pytest.raises(SystemExit) as exit_:  # only distill passes options on
        run_vbprune("prune", "--model", "m", "--ratio", 0.5, "--output", out, "--max_steps", 3)
    assert exit_.value.code == 2 and "unrecognized arguments: --max_steps 3" in (
        capsys.readouterr().err
    )


def test_the_training_options_distill_help_names_exist():
    import re

    from vbprune.commands.distill import TRAINING_HELP, _training_parser

    named = set(re.findall(r"--\w+", TRAINING_HELP))
    known = {option for action in _training_parser()._actions for option in action.option_strings}
    assert named and named <= known, named - known
