"""`vbprune distill` end to end on the tiny trained model and image folder."""

from __future__ import annotations

import json
import shutil

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
