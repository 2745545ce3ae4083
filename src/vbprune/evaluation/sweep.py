"""Accuracy against size: one calibration, many ratios and criteria (``vbprune sweep``).

The paper's ablation: variance (the method) against random selection and weight
magnitude, each with and without the mean fold, all right after pruning (no fine-tuning),
plotted against MACs and parameters; by default every registered criterion with every
registered compensation (:data:`~vbprune.core.criteria.CRITERIA`,
:data:`~vbprune.core.compensation.COMPENSATIONS`).

With MAC budgets (``target_macs``), also a curve of accuracy against the share of MACs
kept, pruning MLP neurons only and, with ``heads``, attention heads with them
(:func:`budget_sweep`).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..core.compensation import COMPENSATIONS
from ..core.config import PruningConfig, compensation
from ..core.criteria import CRITERIA
from ..core.errors import ConfigError
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
    target_macs: Sequence[float] = (),
    heads: bool = False,
    images: Tensor | None = None,
    budget_compensate: str = "ls",
) -> list[dict[str, Any]]:
    """Prune copies of ``model`` at every ratio, criterion and fold setting; score each
    (then, with ``target_macs``, the rows of :func:`budget_sweep`).

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
        target_macs: Shares of the original MACs to keep (:func:`budget_sweep`).
        heads: Prune attention heads too at each of ``target_macs`` (``stats`` from
            ``VarianceCalibrator(model, heads=True)``).
        images: Calibration images choosing the weight of heads against neurons.
        budget_compensate: The compensation of the budget rows.

    Returns:
        One row per (ratio, criterion, fold): ratio, criterion, fold (the compensation's
        name), accuracy, MACs, params; the first row is the original model; then the
        budget rows (``ratio`` ``None``).

    Raises:
        ConfigError: before any pruning, for a bad ratio, criterion, compensation or
            budget.
    """
    criteria = list(CRITERIA) if criteria is None else list(criteria)
    folds = list(COMPENSATIONS) if folds is None else [compensation(f) for f in folds]
    configs = [  # every setting checked before the work
        PruningConfig(ratio, criterion=criterion, compensate=fold)
        for ratio in ratios
        for criterion in criteria
        for fold in folds
    ]
    budgets = _budget_configs(target_macs, heads, budget_compensate)
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
    if budgets:
        rows += _budget_rows(model, stats, budgets, score, input_size, images, rows[0]["macs"])
    return rows


def budget_sweep(
    model: nn.Module,
    stats: ActivationStats,
    target_macs: Sequence[float],
    score: Callable[[nn.Module], float],
    input_size: Sequence[int],
    heads: bool = True,
    images: Tensor | None = None,
    compensate: str = "ls",
) -> list[dict[str, Any]]:
    """Prune copies of ``model`` to every share of its MACs kept, MLP neurons only and
    (with ``heads``) attention heads with them; score each.

    Args:
        model: The trained model (left unchanged).
        stats: Its calibration statistics (with ``heads``: from
            ``VarianceCalibrator(model, heads=True)``; with ``"ls"``: with covariance).
        target_macs: Shares of the original MACs to keep, in (0, 1].
        score: Accuracy of a model.
        input_size: ``(C, H, W)`` for counting MACs.
        heads: Also prune attention heads (a second row per budget).
        images: Calibration images on which the weight of heads against neurons is
            chosen (KL to the original logits); without them the default weight.
        compensate: The compensation of every row (the criterion is the config's
            default for a budget).

    Returns:
        One row per (budget, heads): ratio ``None``, target_macs, heads, criterion, fold,
        accuracy, MACs, params, macs_share (counted, of the original), heads_kept,
        heads_total, head_weight; a budget out of reach (MLP neurons alone often cannot
        go as low) has accuracy ``None`` and the reason in ``error``.

    Raises:
        ConfigError: before any pruning, for a budget out of (0, 1] or a bad compensation.
    """
    configs = _budget_configs(target_macs, heads, compensate)
    return _budget_rows(model, stats, configs, score, input_size, images,
                        count_macs(model, input_size))  # fmt: skip


def _budget_configs(
    target_macs: Sequence[float], heads: bool, compensate: str
) -> list[PruningConfig]:
    variants = (False, True) if heads else (False,)
    return [
        PruningConfig(target_macs=target, heads=with_heads, compensate=compensate)
        for target in target_macs
        for with_heads in variants
    ]


def _budget_rows(
    model: nn.Module,
    stats: ActivationStats,
    configs: list[PruningConfig],
    score: Callable[[nn.Module], float],
    input_size: Sequence[int],
    images: Tensor | None,
    dense_macs: int,
) -> list[dict[str, Any]]:
    rows = []
    for config in configs:
        row: dict[str, Any] = {
            "ratio": None, "target_macs": config.target_macs, "heads": config.heads,
            "criterion": config.criterion, "fold": config.compensate,
        }  # fmt: skip
        pruned = copy.deepcopy(model)
        try:
            result = prune_model(pruned, stats, config=config, images=images)
        except ConfigError as error:  # out of reach: a point the curve does not have
            rows.append({**row, "accuracy": None, "error": str(error)})
            continue
        macs = count_macs(pruned, input_size)
        rows.append({
            **row, "accuracy": score(pruned), "macs": macs, "params": count_params(pruned),
            "macs_share": macs / dense_macs,
            "heads_kept": sum(result.heads.values()) if result.heads else None,
            "heads_total": sum(result.original_heads.values()) if result.heads else None,
            "head_weight": result.budget.get("head_weight"),
        })  # fmt: skip
    return rows


def _ratio_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows pruned to a ratio (not the original, not the budget rows)."""
    return [r for r in rows[1:] if r["ratio"] is not None]


def _budget_lines(rows: list[dict[str, Any]]) -> dict[bool, list[dict[str, Any]]]:
    """The budget rows that were reached, MLP only (``False``) and with heads (``True``)."""
    lines: dict[bool, list[dict[str, Any]]] = {}
    for row in rows[1:]:
        if row["ratio"] is None and row["accuracy"] is not None:
            lines.setdefault(row["heads"], []).append(row)
    return lines


def _settings(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (criterion, compensation) pairs of the rows, in the order they were swept."""
    return list(dict.fromkeys((r["criterion"], compensation(r["fold"])) for r in _ratio_rows(rows)))


def _label(fold: bool | str) -> str:
    return COMPENSATIONS[compensation(fold)].label


def _budget_label(heads: bool, row: dict[str, Any]) -> str:
    what = "heads + MLP neurons" if heads else "MLP neurons only"
    return f"{what} ({CRITERIA[row['criterion']].label}, {_label(row['fold'])})"


def plot(rows: list[dict[str, Any]], path) -> None:
    """Accuracy right after pruning against MACs and against params, one line per setting;
    with budget rows, a third panel: accuracy against the share of MACs kept, MLP neurons
    only against heads with them."""
    from .._extras import require

    matplotlib = require("matplotlib", "demo", "vbprune sweep's plot")
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    budget = _budget_lines(rows)
    figure, axes = plt.subplots(1, 3 if budget else 2, figsize=(16 if budget else 11, 4.2))
    original = rows[0]
    settings = _settings(rows)
    colours = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(c for c, _ in settings))}
    # one line style per compensation, in the registry's order (solid: the paper's fold)
    styles = dict(zip(COMPENSATIONS, itertools.cycle(["-", ":", "--", "-."])))
    for criterion, fold in settings:
        line = [original] + [
            r
            for r in _ratio_rows(rows)
            if (r["criterion"], compensation(r["fold"])) == (criterion, fold)
        ]
        label = f"{CRITERIA[criterion].label}, {_label(fold)}"
        style = styles[fold]
        for axis, key, unit in ((axes[0], "macs", 1e6), (axes[1], "params", 1e3)):
            axis.plot([r[key] / unit for r in line], [100 * r["accuracy"] for r in line],
                      style, marker="o", color=colours[criterion], label=label)  # fmt: skip
    axes[0].set_xlabel("MACs (M)")
    axes[1].set_xlabel("parameters (k)")
    if budget:
        for heads, line in sorted(budget.items()):
            line = [{**original, "macs_share": 1.0}, *sorted(line, key=lambda r: -r["macs_share"])]
            axes[2].plot([100 * r["macs_share"] for r in line],
                         [100 * r["accuracy"] for r in line], "-" if heads else "--",
                         marker="s" if heads else "o", color="black" if heads else "grey",
                         label=_budget_label(heads, line[-1]))  # fmt: skip
        axes[2].set_xlabel("MACs kept (% of the original), to a budget")
        axes[2].legend(fontsize=7)
    for axis in axes:
        axis.set_ylabel("top-1 right after pruning (%)")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    figure.suptitle("VBP ablation on the digits ViT (no fine-tuning)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one row per ratio, one column per criterion and fold setting; then, with
    budget rows, one row per share of MACs asked: MLP only, heads + MLP, heads kept."""
    settings = _settings(rows)
    ratios = sorted({r["ratio"] for r in _ratio_rows(rows)})
    head = [f"{CRITERIA[c].label} ({_label(f)})" for c, f in settings]
    lines = [f"original top-1: {100 * rows[0]['accuracy']:.1f} %"]
    if ratios:
        lines += ["", "| ratio | MACs | params | " + " | ".join(head) + " |",
                  "|---" * (3 + len(head)) + "|"]  # fmt: skip
    for ratio in ratios:
        at = {(r["criterion"], compensation(r["fold"])): r
              for r in _ratio_rows(rows) if r["ratio"] == ratio}  # fmt: skip
        first = next(iter(at.values()))
        cells = [f"{100 * at[s]['accuracy']:.1f} %" for s in settings]
        lines.append(f"| {ratio:g} | {first['macs'] / 1e6:.2f} M | {first['params'] / 1e3:.1f} k | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines + _budget_table(rows)) + "\n"


def _budget_table(rows: list[dict[str, Any]]) -> list[str]:
    """The budget rows' lines of :func:`table` (none without budget rows)."""
    budget = [r for r in rows[1:] if r["ratio"] is None]
    if not budget:
        return []
    first = budget[0]
    with_heads = any(r["heads"] for r in budget)
    columns = ["MLP neurons only", *(["heads + MLP neurons", "heads kept"] * with_heads)]

    def cell(row: dict[str, Any] | None) -> str:
        if row is None or row["accuracy"] is None:
            return "out of reach"
        return f"{100 * row['accuracy']:.1f} % (MACs {100 * row['macs_share']:.1f} %)"

    lines = [
        "",
        f"To a share of the MACs ({CRITERIA[first['criterion']].label}, "
        f"{_label(first['fold'])}; MACs kept as counted):",
        "",
        "| MACs asked | " + " | ".join(columns) + " |",
        "|---" * (1 + len(columns)) + "|",
    ]
    for target in sorted({r["target_macs"] for r in budget}, reverse=True):
        at = {r["heads"]: r for r in budget if r["target_macs"] == target}
        cells = [cell(at.get(False))]
        if with_heads:
            row = at.get(True)
            kept = row and row.get("heads_kept")
            cells += [cell(row), f"{kept}/{row['heads_total']}" if kept is not None else "-"]
        lines.append(f"| {100 * target:g} % | " + " | ".join(cells) + " |")
    return lines
