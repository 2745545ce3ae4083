"""Heads with MLP neurons against MLP neurons only, to a MAC budget, on the digits ViTs.

    python benchmarks/heads_digits.py [--targets 0.5 0.4 0.3] [--seeds 0 1 2]

Each digits ViT (seed 0 is the cached model behind `vbprune demo`; others are trained
here for 15 epochs) is calibrated once, with heads and covariance, on the 1,437 training
digits, then pruned to each share of its dense MACs with every criterion and
compensation, MLP-only and with heads (the weight of heads against neurons chosen by KL
to the dense logits on 256 calibration digits, MLP-only among the candidates). Top-1 on
the 360 held-out digits right after pruning, no fine-tuning; after the slash the mean KL
of the pruned model's predictions from the dense model's on them. "-" is a budget out of
reach (MLP-only cannot go below about 36 % of this ViT's MACs). The MACs are counted on
the pruned model (vbprune.count_macs).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import vbprune
from vbprune._digits import (
    accuracy,
    digits_vit,
    load_digits_tensors,
    train_classifier,
    trained_digits_vit,
)

CRITERIA = ("variance", "fluctuation", "obs")
COMPENSATIONS = ("mean", "ls")


def kl_from(dense_logits: torch.Tensor, model: torch.nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        pruned = model(images).log_softmax(-1)
    dense = dense_logits.log_softmax(-1)
    return float(torch.nn.functional.kl_div(pruned, dense, log_target=True, reduction="batchmean"))


def run(model, stats, config, probe, test, dense_logits):
    """Prune a copy; ``((top1, kl), result, seconds, pruned)``, or ``None`` out of reach."""
    pruned = copy.deepcopy(model)
    start = time.perf_counter()
    try:
        images = probe if config.heads else None
        result = vbprune.prune_model(pruned, stats, config=config, images=images)
    except ValueError:
        return None
    seconds = time.perf_counter() - start
    top1 = accuracy(pruned, *test)
    return (top1, kl_from(dense_logits, pruned, test[0])), result, seconds, pruned


def describe(result, seconds, pruned, dense_macs) -> tuple[str, str, str, str]:
    """Heads kept, the weight chosen, the MACs counted, the pruning time."""
    weight = result.budget["head_weight"]
    return (
        f"{sum(result.heads.values())}/{sum(result.original_heads.values())}",
        "MLP only" if weight is None else f"{weight:g}",
        f"{vbprune.count_macs(pruned) / dense_macs:.3f}",
        f"{seconds:.1f}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 0.4, 0.3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--criteria", nargs="+", default=list(CRITERIA))
    parser.add_argument("--compensations", nargs="+", default=list(COMPENSATIONS))
    args = parser.parse_args()
    train_x, train_y, test_x, test_y = load_digits_tensors()
    probe = train_x[:256]
    print("| seed | dense | MACs kept | criterion | compensate | MLP only | heads + MLP "
          "| heads kept | weight | MACs counted | prune s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    summary: dict[tuple, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        if seed == 0:
            model = trained_digits_vit(train_x, train_y)
        else:
            model = train_classifier(digits_vit(seed), train_x, train_y, epochs=15, seed=seed)
        dense_acc = accuracy(model, test_x, test_y)
        with torch.no_grad():
            dense_logits = model(test_x)
        stats = vbprune.VarianceCalibrator(model, heads=True, covariance=True).run(
            train_x.split(128)
        )
        dense_macs = vbprune.count_macs(model)
        for target in args.targets:
            for criterion in args.criteria:
                for compensate in args.compensations:
                    cells, extra = [], ("-", "-", "-", "-")
                    for heads in (False, True):
                        config = vbprune.PruningConfig(target_macs=target, heads=heads,
                                                       criterion=criterion,
                                                       compensate=compensate)  # fmt: skip
                        cell = run(model, stats, config, probe, (test_x, test_y), dense_logits)
                        if cell is None:
                            cells.append("-")
                            continue
                        (top1, kl), result, seconds, pruned = cell
                        cells.append(f"{top1:.3f} / {kl:.3f}")
                        summary.setdefault((target, criterion, compensate, heads), []).append(
                            (top1, kl)
                        )
                        if heads:
                            extra = describe(result, seconds, pruned, dense_macs)
                    print(
                        f"| {seed} | {dense_acc:.3f} | {target:g} | {criterion} | {compensate} "
                        f"| {cells[0]} | {cells[1]} | {' | '.join(extra)} |",
                        flush=True,
                    )
    if len(args.seeds) > 1:
        print("\nMean over seeds (top-1 / KL):\n")
        print("| MACs kept | criterion | compensate | MLP only | heads + MLP |")
        print("|---|---|---|---|---|")
        for target in args.targets:
            for criterion in args.criteria:
                for compensate in args.compensations:
                    row = []
                    for heads in (False, True):
                        values = summary.get((target, criterion, compensate, heads))
                        if not values:
                            row.append("-")
                            continue
                        top1 = statistics.mean(v[0] for v in values)
                        kl = statistics.mean(v[1] for v in values)
                        row.append(f"{top1:.3f} / {kl:.3f}")
                    print(f"| {target:g} | {criterion} | {compensate} | {row[0]} | {row[1]} |")


if __name__ == "__main__":
    main()
