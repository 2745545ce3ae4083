"""Accuracy right after pruning with each compensation: none, VBP's mean fold, least
squares, and least squares after OBS selection.

    python benchmarks/compensation_digits.py [--ratios 0.5 0.7 0.8 0.9] [--seeds 0 1]

On digits ViTs trained here (scikit-learn's bundled digits; seed 0 is the cached model
behind `vbprune demo`), calibrated once with covariance on the training images, pruned
with global ranking, scored on the 360 held-out digits. No fine-tuning. Each cell is
top-1 and, after the slash, the mean KL divergence of the pruned model's predictions from
the original's (a finer measure than top-1 on 360 images).
"""

from __future__ import annotations

import argparse
import copy

import torch

import vbprune
from vbprune._digits import (
    accuracy,
    digits_vit,
    load_digits_tensors,
    train_classifier,
    trained_digits_vit,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    train_x, train_y, test_x, test_y = load_digits_tensors()
    print("| model | dense | ratio | none | mean (VBP) | ls | obs + ls |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        if seed == 0:
            model = trained_digits_vit(train_x, train_y)
        else:
            model = train_classifier(digits_vit(seed), train_x, train_y, epochs=15, seed=seed)
        stats = vbprune.VarianceCalibrator(model, covariance=True).run(train_x.split(256))
        dense = accuracy(model, test_x, test_y)
        with torch.no_grad():
            reference = model(test_x).log_softmax(-1)
        for ratio in args.ratios:
            scores = []
            for criterion, mode in (("variance", "none"), ("variance", "mean"),
                                    ("variance", "ls"), ("obs", "ls")):  # fmt: skip
                pruned = copy.deepcopy(model)
                vbprune.prune_model(pruned, stats, ratio=ratio, compensate=mode,
                                    criterion=criterion)  # fmt: skip
                with torch.no_grad():
                    predicted = pruned(test_x).log_softmax(-1)
                kl = torch.nn.functional.kl_div(predicted, reference, log_target=True,
                                                reduction="batchmean")  # fmt: skip
                scores.append(f"{accuracy(pruned, test_x, test_y):.4f} / {float(kl):.3f}")
            print(f"| seed {seed} | {dense:.4f} | {ratio} | " + " | ".join(scores) + " |")


if __name__ == "__main__":
    main()
