"""Distillation cost and recovery, measured side by side in one run.

    python benchmarks/distillation.py

1. Step time of a distillation step (student + frozen teacher forward, student backward)
   over a plain cross-entropy step, same model, same batches (DeiT-S pruned 50%, batch 8).
2. Recovery curve on the digits ViT (scikit-learn's bundled digits): top-1 after each
   epoch of distillation at ratios 0.5 and 0.8, next to plain fine-tuning (alpha=0).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import timm
import torch

import vbprune
from vbprune._digits import (
    TensorImageDataset,
    accuracy,
    digits_vit,
    load_digits_tensors,
    train_classifier,
)
from vbprune.training.losses import distillation_loss


def step_times(args) -> None:
    teacher = timm.create_model(args.model, pretrained=False).eval()
    student = copy.deepcopy(teacher)
    batches = [torch.randn(args.batch_size, 3, 224, 224) for _ in range(2)]
    stats = vbprune.VarianceCalibrator(teacher).run(batches)
    vbprune.prune_model(student, stats, args.ratio)
    student.train()
    labels = torch.randint(0, 1000, (args.batch_size,))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-5)

    def ce_step(x):
        loss = torch.nn.functional.cross_entropy(student(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def kd_step(x):
        with torch.no_grad():
            teacher_logits = teacher(x)
        loss = distillation_loss(student(x), teacher_logits, labels, 0.5, 2.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    times = {"ce": [], "kd": []}
    ce_step(batches[0]), kd_step(batches[0])  # warm-up
    for i in range(args.repeats):
        for name, step in (("ce", ce_step), ("kd", kd_step)):
            start = time.perf_counter()
            step(batches[i % 2])
            times[name].append(time.perf_counter() - start)
    ce, kd = statistics.median(times["ce"]), statistics.median(times["kd"])
    print(
        f"{args.model} pruned {args.ratio}, batch {args.batch_size}: CE step {ce * 1e3:.0f} ms,"
        f" distillation step {kd * 1e3:.0f} ms, ratio {kd / ce:.2f}x (median of {args.repeats})"
    )


def recovery_curves(epochs: int) -> None:
    from vbprune import DistillationTrainer, DistillationTrainingArguments

    train_x, train_y, test_x, test_y = load_digits_tensors()
    teacher = train_classifier(digits_vit(), train_x, train_y, epochs=15)
    stats = vbprune.VarianceCalibrator(teacher).run(train_x.split(256))
    print(f"digits ViT: original top-1 {accuracy(teacher, test_x, test_y):.3f}")
    for ratio in (0.5, 0.8):
        for alpha in (0.5, 0.0):
            # the trainer froze the teacher in place: a student copied from it is thawed
            student = copy.deepcopy(teacher).requires_grad_(True)
            vbprune.prune_model(student, stats, ratio)
            curve = [accuracy(student, test_x, test_y)]
            for _ in range(epochs):  # one epoch per run: accuracy after each
                trainer = DistillationTrainer(
                    model=student, teacher_model=teacher,
                    train_dataset=TensorImageDataset(train_x, train_y),
                    args=DistillationTrainingArguments(
                        "/tmp/vbprune-bench", num_train_epochs=1, learning_rate=1e-3,
                        per_device_train_batch_size=64, lr_scheduler_type="constant",
                        alpha=alpha, use_cpu=True, report_to=[], save_strategy="no",
                        logging_strategy="no", seed=len(curve), disable_tqdm=True,
                    ),
                )  # fmt: skip
                trainer.train()
                curve.append(accuracy(student, test_x, test_y))
            kind = "distillation (alpha 0.5)" if alpha else "cross-entropy only"
            print(
                f"ratio {ratio}, {kind}: top-1 per epoch " + " -> ".join(f"{a:.3f}" for a in curve)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_small_patch16_224")
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    step_times(args)
    recovery_curves(args.epochs)


if __name__ == "__main__":
    main()
