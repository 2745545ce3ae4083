"""On a real trained network (scikit-learn digits), distillation recovers pruned accuracy."""

from __future__ import annotations

import copy

import pytest

import vbprune
from vbprune import DistillationTrainer, DistillationTrainingArguments
from vbprune._digits import (
    TensorImageDataset,
    accuracy,
    digits_vit,
    load_digits_tensors,
    train_classifier,
)


@pytest.mark.slow
def test_short_distillation_raises_pruned_accuracy(tmp_path):
    train_x, train_y, test_x, test_y = load_digits_tensors()
    teacher = train_classifier(digits_vit(), train_x, train_y, epochs=15)
    stats = vbprune.VarianceCalibrator(teacher).run(train_x.split(256))
    student = copy.deepcopy(teacher)
    vbprune.prune_model(student, stats, 0.9)
    original = accuracy(teacher, test_x, test_y)
    pruned = accuracy(student, test_x, test_y)

    args = DistillationTrainingArguments(
        str(tmp_path), num_train_epochs=3, learning_rate=1e-3, per_device_train_batch_size=64,
        use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no", seed=0,
        warmup_steps=0,
    )  # fmt: skip
    trainer = DistillationTrainer(model=student, teacher_model=teacher, args=args,
                                  train_dataset=TensorImageDataset(train_x, train_y))  # fmt: skip
    trainer.train()
    recovered = accuracy(student, test_x, test_y)
    print(
        f"digits ViT top-1: original {original:.3f}, pruned 90% {pruned:.3f}, "
        f"after 3 epochs of distillation {recovered:.3f}"
    )
    assert original > 0.8  # a real trained network
    assert pruned < original  # pruning 90% of the MLP neurons costs accuracy
    assert recovered > pruned + 0.02  # and distillation wins it back
