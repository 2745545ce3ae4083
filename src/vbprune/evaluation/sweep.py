"""Accuracy against size: one calibration, many ratios and criteria (``vbprune sweep``).

The paper's ablation: variance (the method) against random selection and weight
magnitude, each with and without the mean fold, all right after pruning (no fine-tuning),
plotted against MACs and parameters; by default every registered criterion with every
registered compensation (:data:`~vbprune.core.criteria.CRITERIA`,
:data:`~vbprune.core.compensation.COMPENSATIONS`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ..core.compensation import COMPENSATIONS
from ..core.config import PruningConfig, compensation
from ..core.criteria import CRITERIA
from ..core.statistics import ActivationStats
from ..pruning import prune_model
from .counting import count_macs, count_params


def sweep(
    model: nn.Module,
    stats: ActivationStats,
    ratios: Sequence[float],
    score: Callable[[nn.Module], float],
    input_size: Sequence[int],
    criteria: Sequence[str] | None = None,
    folds: Sequence[bool | str] | None = None,
) -> list[dict[str, Any]]:
    """Prune copies of ``model`` at every ratio, criterion and fold setting; score each.

    Args:
        model: The trained model (left unchanged).
        stats: Its calibration statistics, computed once.
        ratios: Fractions of MLP neurons to remove.
        score: Accuracy of a model (e.g. top-1 on held-out data).
        input_size: ``(C, H, W)`` for counting MACs.
        criteria: Selection criteria to compare (default: every registered one).
        folds: Compensations to compare (default: every registered one): names
            (``"mean"``, ``"ls"``, ``"none"``; ``"ls"`` needs statistics with
            covariance) or ``True``/``False`` (the mean fold or none, the paper's
            ablation).

    Returns:
        One row per (ratio, criterion, fold): ratio, criterion, fold (the compensation's
        name), accuracy, MACs, params; the first row is the original model.

    Raises:
        ConfigError: before any pruning, for a bad ratio, criterion or compensation.
    """
    criteria = list(CRITERIA) if criteria is None else list(criteria)
    folds = list(COMPENSATIONS) if folds is None else [compensation(f) for f in folds]
    configs = [  # every setting checked before the work
        PruningConfig(ratio, criterion=criterion, compensate=fold)
        for ratio in ratios
        for criterion in criteria
        for fold in folds
    ]
    rows = [{"ratio": 0.0, "criterion": "original", "fold": None, "accuracy": score(model),
             "macs": count_macs(model, input_size), "params": count_params(model)}]  # fmt: skip
    for config in configs:
        pruned = copy.deepcopy(model)
        prune_model(pruned, stats, config=config)
        rows.append({
            "ratio": config.ratio, "criterion": config.criterion, "fold": config.compensate,
            "accuracy": score(pruned), "macs": count_macs(pruned, input_size),
            "params": count_params(pruned),
        })  # fmt: skip
    return rows


def _settings(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (criterion, compensation) pairs of the rows, in the order they were swept."""
    return list(dict.fromkeys((r["criterion"], compensation(r["fold"])) for r in rows[1:]))


def _label(fold: bool | str) -> str:
    return COMPENSATIONS[compensation(fold)].label


def plot(rows: list[dict[str, Any]], path) -> None:
    """Accuracy right after pruning against MACs and against params, one line per setting."""
    from .._extras import require

    matplotlib = require("matplotlib", "demo", "vbprune sweep's plot")
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    original = rows[0]
    settings = _settings(rows)
    colours = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(c for c, _ in settings))}
    # one line style per compensation, in the registry's order (solid: the paper's fold)
    styles = dict(zip(COMPENSATIONS, itertools.cycle(["-", ":", "--", "-."])))
    for criterion, fold in settings:
        line = [original] + [
            r for r in rows[1:] if (r["criterion"], compensation(r["fold"])) == (criterion, fold)
        ]
        label = f"{CRITERIA[criterion].label}, {_label(fold)}"
        style = styles[fold]
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
    head = [f"{CRITERIA[c].label} ({_label(f)})" for c, f in settings]
    lines = [
        f"original top-1: {100 * rows[0]['accuracy']:.1f} %",
        "",
        "| ratio | MACs | params | " + " | ".join(head) + " |",
        "|---" * (3 + len(head)) + "|",
    ]
    for ratio in ratios:
        at = {(r["criterion"], compensation(r["fold"])): r for r in rows[1:] if r["ratio"] == ratio}
        first = next(iter(at.values()))
        cells = [f"{100 * at[s]['accuracy']:.1f} %" for s in settings]
        lines.append(f"| {ratio:g} | {first['macs'] / 1e6:.2f} M | {first['params'] / 1e3:.1f} k | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"
