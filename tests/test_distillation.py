"""Distillation loss and DistillationTrainer: hand-checked loss, frozen teacher, exact GA."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import vbprune
from testing_utils import FAMILIES, randomize
from vbprune import DistillationTrainer, DistillationTrainingArguments
from vbprune.training.losses import distillation_loss

STUDENT = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.5, -0.5]])
TEACHER = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 3.0, 1.0]])
LABELS = torch.tensor([0, 2])


def softmax(row, t):
    e = [math.exp(v / t) for v in row]
    return [v / sum(e) for v in e]


def hand_loss(alpha, t):
    ce = sum(-math.log(softmax(s, 1)[y]) for s, y in zip(STUDENT.tolist(), LABELS.tolist())) / 2
    kl = 0.0
    for s, te in zip(STUDENT.tolist(), TEACHER.tolist()):
        p, q = softmax(te, t), softmax(s, t)
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    return (1 - alpha) * ce + alpha * t * t * kl / 2


@pytest.mark.parametrize("alpha, temperature", [(0.5, 2.0), (0.9, 4.0), (1.0, 1.0), (0.0, 3.0)])
def test_loss_equals_a_hand_computation(alpha, temperature):
    loss = distillation_loss(STUDENT, TEACHER, LABELS, alpha, temperature)
    assert loss.item() == pytest.approx(hand_loss(alpha, temperature), rel=1e-6)


def test_alpha_zero_is_plain_cross_entropy_and_bad_input():
    plain = torch.nn.functional.cross_entropy(STUDENT, LABELS)
    assert torch.equal(distillation_loss(STUDENT, TEACHER, LABELS, alpha=0.0), plain)
    with pytest.raises(ValueError, match="label space"):
        distillation_loss(STUDENT, TEACHER[:, :2], LABELS)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(STUDENT, TEACHER, LABELS, alpha=1.5)
    with pytest.raises(ValueError, match="labels are needed"):
        distillation_loss(STUDENT, TEACHER, None, alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationTrainingArguments("unused", temperature=0.0, use_cpu=True)


class Images(torch.utils.data.Dataset):
    def __init__(self, n=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 10, (n,), generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"pixel_values": self.x[i], "labels": self.y[i]}


def train_once(tmp_path, student, teacher, batch, accumulation, family):
    args = DistillationTrainingArguments(
        str(tmp_path / f"run{batch}x{accumulation}"), per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation, max_steps=1, learning_rate=0.5, optim="sgd",
        lr_scheduler_type="constant", weight_decay=0.0, use_cpu=True, report_to=[],
        save_strategy="no", logging_strategy="no", seed=0, alpha=0.7, temperature=2.0,
        max_grad_norm=0.0,  # no clipping: it would hide a wrongly scaled gradient
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=Images())  # fmt: skip
    trainer.train()
    return trainer


@pytest.mark.parametrize("family", ["timm-vit", "hf-convnext"])
def test_teacher_is_frozen_and_accumulation_matches_one_big_batch(tmp_path, images, family):
    torch.manual_seed(0)
    teacher = randomize(FAMILIES[family]())
    student = copy.deepcopy(teacher)
    vbprune.prune_model(student, vbprune.VarianceCalibrator(student).run([images]), 0.5)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}

    big = train_once(tmp_path, copy.deepcopy(student), teacher, 8, 1, family)
    small = train_once(tmp_path, copy.deepcopy(student), teacher, 4, 2, family)

    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not big.teacher.training
    moved = [k for k, v in big.model.state_dict().items()
             if not torch.equal(v, as_state(student)[k])]  # fmt: skip
    assert moved  # the student trained
    for key, value in big.model.state_dict().items():
        torch.testing.assert_close(small.model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def as_state(model):
    from vbprune.training.trainer import as_trainable

    return as_trainable(copy.deepcopy(model)).state_dict()


def test_teacher_with_another_label_space_is_refused(tmp_path):
    student = FAMILIES["timm-vit"]()
    teacher = FAMILIES["hf-vit"]()
    teacher.config.num_labels = 7
    args = DistillationTrainingArguments(str(tmp_path), use_cpu=True, report_to=[])
    with pytest.raises(ValueError, match="7 classes, the student 10"):
        DistillationTrainer(model=student, teacher_model=teacher, args=args,
                            train_dataset=Images())  # fmt: skip


def epoch_trainer(folder, student, teacher, epochs, scores=None, **extra):
    """A trainer that evaluates, saves and keeps checkpoints every epoch; ``scores`` are
    the top-1 values its evaluations report, in order (to choose which epoch is best)."""
    scores = iter(scores or [])
    options = dict(
        per_device_train_batch_size=4, num_train_epochs=epochs, learning_rate=0.05,
        lr_scheduler_type="linear", use_cpu=True, report_to=[], eval_strategy="epoch",
        save_strategy="epoch", logging_strategy="no", seed=0, save_total_limit=2,
        load_best_model_at_end=True, metric_for_best_model="top1", dataloader_num_workers=0,
    )  # fmt: skip
    args = DistillationTrainingArguments(str(folder), **{**options, **extra})
    return DistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=Images(),
        eval_dataset=Images(4, seed=1), compute_metrics=lambda _: {"top1": next(scores)},
    )  # fmt: skip


def pruned_pair(family, images):
    torch.manual_seed(0)
    teacher = randomize(FAMILIES[family]())
    student = copy.deepcopy(teacher)
    vbprune.prune_model(student, vbprune.VarianceCalibrator(student).run([images]), 0.5)
    return student, teacher


@pytest.mark.parametrize("family", ["hf-vit", "timm-vit"])
def test_best_checkpoint_is_loaded_whole_when_it_is_not_the_last(tmp_path, images, family):
    from safetensors.torch import load_file

    student, teacher = pruned_pair(family, images)
    trainer = epoch_trainer(tmp_path, student, teacher, 3, scores=[0.9, 0.5, 0.3])
    trainer.train()
    best = tmp_path / "checkpoint-2"  # epoch 1 of 3 (8 images, batch 4)
    assert trainer.state.best_model_checkpoint == str(best)
    model = trainer.model.state_dict()

    def matches(tensors) -> int:  # model tensors equal to one of the file's, by value only
        return sum(any(t.shape == v.shape and torch.equal(t, v) for t in tensors)
                   for v in model.values())  # fmt: skip

    # transformers 5 saves ViT under other names: compare values, not names
    assert matches(list(load_file(best / "model.safetensors").values())) == len(model)
    last = list(load_file(tmp_path / "checkpoint-6" / "model.safetensors").values())
    assert matches(last) < len(model)  # the last epoch differs: best != last is tested


@pytest.mark.parametrize("family", ["hf-vit", "timm-vit"])
def test_resumed_training_ends_where_an_uninterrupted_run_ends(tmp_path, images, family):
    from transformers import TrainerCallback

    class StopAfterFirstEpoch(TrainerCallback):  # a run killed after its first checkpoint
        def on_save(self, args, state, control, **kwargs):
            control.should_training_stop = True

    student, teacher = pruned_pair(family, images)
    fresh = copy.deepcopy(student)  # other weights: the checkpoint must replace them all
    with torch.no_grad():
        for parameter in fresh.parameters():
            parameter.add_(1.0)
    whole = epoch_trainer(tmp_path / "whole", copy.deepcopy(student), teacher, 2,
                          scores=[0.5, 0.6], load_best_model_at_end=False)  # fmt: skip
    whole.train()
    first = epoch_trainer(tmp_path / "parts", copy.deepcopy(student), teacher, 2,
                          scores=[0.5], load_best_model_at_end=False)  # fmt: skip
    first.add_callback(StopAfterFirstEpoch())
    first.train()
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == ["checkpoint-2"]
    second = epoch_trainer(tmp_path / "parts", fresh, teacher, 2, scores=[0.6],
                           load_best_model_at_end=False)  # fmt: skip
    second.train(resume_from_checkpoint=str(tmp_path / "parts" / "checkpoint-2"))
    assert second.state.global_step == whole.state.global_step == 4
    resumed, uninterrupted = second.model.state_dict(), whole.model.state_dict()
    assert resumed.keys() == uninterrupted.keys()
    for key, value in uninterrupted.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_skipped_image_slots_are_left_out_of_the_loss(tmp_path):
    from vbprune.training.trainer import IGNORED

    torch.manual_seed(0)
    student, teacher = FAMILIES["timm-vit"](), FAMILIES["timm-vit"]()
    trainer = DistillationTrainer(
        model=student, teacher_model=teacher, train_dataset=Images(),
        args=DistillationTrainingArguments(str(tmp_path), use_cpu=True, report_to=[]),
    )  # fmt: skip
    pixels = torch.randn(3, 3, 32, 32)
    inputs = {"pixel_values": pixels, "labels": torch.tensor([1, IGNORED, 2]),
              "skipped": ["bad.png"]}  # fmt: skip
    loss = trainer.compute_loss(trainer.model, inputs)
    real = [0, 2]
    with torch.no_grad():
        expected = distillation_loss(student(pixels[real]), teacher(pixels[real]),
                                     torch.tensor([1, 2]), 0.5, 2.0)  # fmt: skip
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert trainer.skipped_images == {"bad.png"}
    nothing = {"pixel_values": pixels[:1], "labels": torch.tensor([IGNORED])}
    assert float(trainer.compute_loss(trainer.model, nothing)) == 0.0
