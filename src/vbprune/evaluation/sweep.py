"""Accuracy against size: one calibration, many ratios and criteria (``vbprune sweep``).

The paper's ablation: variance (the method) against random selection and weight
magnitude, each with and without the mean fold, all right after pruning (no fine-tuning),
plotted against MACs and parameters.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..core.config import CRITERIA, PruningConfig, compensation
from ..core.statistics import ActivationStats
from ..pruning import prune_model
from .counting import count_macs, count_params


def sweep(
    model: nn.Module,
    stats: ActivationStats,
    ratios: Sequence[float],
    score: Callable[[nn.Module], float],
    input_size: Sequence[int],
    criteria: Sequence[str] = CRITERIA,
    folds: Sequence[bool | str] = (True, False),
) -> list[dict[str, Any]]:
    """Prune copies of ``model`` at every ratio, criterion and fold setting; score each.

    Args:
        model: The trained model (left unchanged).
        stats: Its calibration statistics, computed once.
        ratios: Fractions of MLP neurons to remove.
        score: Accuracy of a model (e.g. top-1 on held-out data).
        input_size: ``(C, H, W)`` for counting MACs.
        criteria: Selection criteria to compare.
        folds: Compensations to compare: ``True``/``False`` (mean fold or none, as the
            paper's ablation) or ``"mean"``, ``"ls"``, ``"none"`` (``"ls"`` needs
            statistics with covariance).

    Returns:
        One row per (ratio, criterion, fold): ratio, criterion, fold, accuracy, MACs, params.
    """
    rows = [{"ratio": 0.0, "criterion": "original", "fold": None, "accuracy": score(model),
             "macs": count_macs(model, input_size), "params": count_params(model)}]  # fmt: skip
    for ratio in ratios:
        for criterion in criteria:
            for fold in folds:
                pruned = copy.deepcopy(model)
                config = PruningConfig(ratio, criterion=criterion, compensate=fold)
                prune_model(pruned, stats, config=config)
                rows.append({
                    "ratio": ratio, "criterion": criterion, "fold": fold,
                    "accuracy": score(pruned), "macs": count_macs(pruned, input_size),
                    "params": count_params(pruned),
                })  # fmt: skip
    return rows


_SHORT = {"mean": "fold", "ls": "least squares", "none": "no fold"}


def _settings(rows: list[dict[str, Any]]) -> list[tuple[str, bool | str]]:
    """The (criterion, fold) pairs of the rows, in the order they were swept."""
    return list(dict.fromkeys((r["criterion"], r["fold"]) for r in rows[1:]))


def _label(fold: bool | str) -> str:
    return {"mean": "mean fold", "ls": "least squares", "none": "no fold"}[compensation(fold)]


def plot(rows: list[dict[str, Any]], path) -> None:
    """Accuracy right after pruning against MACs and against params, one line per setting."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    original = rows[0]
    settings = _settings(rows)
    colours = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(c for c, _ in settings))}
    for criterion, fold in settings:
        line = [original] + [
            r for r in rows[1:] if (r["criterion"], r["fold"]) == (criterion, fold)
        ]
        label = f"{criterion}, {_label(fold)}"
        style = {"mean": "-", "ls": ":", "none": "--"}[compensation(fold)]
        for axis, key, unit in ((axes[0], "macs", 1e6), (axes[1], "params", 1e3)):
            axis.plot([r[key] / unit for r in line], [100 * r["accuracy"] for r in line],
                      style, marker="o", color=colours[criterion], label=label)  # fmt: skip
    axes[0].set_xlabel("MACs (M)")
    axes[1].set_xlabel("parameters (k)")
    for axis in axes:
        axis.set_ylabel("top-1 right after pruning (%)")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    figure.suptitle("VBP ablation on the digits ViT (no fine-tuning)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per ratio, one column per criterion and fold setting."""
    settings = _settings(rows)
    ratios = sorted({r["ratio"] for r in rows[1:]})
    head = [f"{c} ({_SHORT[compensation(f)]})" for c, f in settings]
    lines = [
        f"original top-1: {100 * rows[0]['accuracy']:.1f} %",
        "",
        "| ratio | MACs | params | " + " | ".join(head) + " |",
        "|---" * (3 + len(head)) + "|",
    ]
    for ratio in ratios:
        at = {(r["criterion"], r["fold"]): r for r in rows[1:] if r["ratio"] == ratio}
        first = next(iter(at.values()))
        cells = [f"{100 * at[s]['accuracy']:.1f} %" for s in settings]
        lines.append(f"| {ratio:g} | {first['macs'] / 1e6:.2f} M | {first['params'] / 1e3:.1f} k | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"
